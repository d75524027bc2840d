"""Read broker settings from a TOML file and validate every value.

A settings key may sit at top level, in any table, in a dotted key or in an array of
tables, and in any letter case. Readers match the lower-case name. The same key found
twice with different values is an error, because the broker would have to guess.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from broker.near_miss_keys import closest_key
from broker.pool_rules import pool_problems
from broker.settings import (
    ALL_POOL_KEYS,
    LEGACY_POOL_KEY,
    AccessRule,
    AccessSettings,
    BrokerConfig,
    LimitSettings,
    PoolSettings,
    SettingsError,
)
from broker.toml_keys import FoundKey, iter_keys, locate_key, locate_table
from broker.topics import InvalidTopicError, validate_topic_filter

_BROKER_KEYS = ("host", "port", "sys_interval", "metrics_port")
_LIMIT_KEYS = {f.name: f.type for f in fields(LimitSettings)}
_ACCESS_KEYS = ("allow_anonymous", "password_file", "acl")
_SETTINGS_KEYS = (*ALL_POOL_KEYS, *_BROKER_KEYS, *_LIMIT_KEYS, *_ACCESS_KEYS)
# Keys of one [[acl]] table.
_ACL_RULE_KEYS = ("user", "topic", "access", "allow")

# Unit of each limit, as the fix in an error message states it.
_LIMIT_UNITS = {
    "max_packet_size": "bytes",
    "connect_timeout": "seconds",
    "max_queued_messages": "messages",
    "max_inflight_messages": "messages",
    "outgoing_high_water": "bytes",
    "keepalive_factor": "times the client's keepalive",
}
_EXAMPLE_PORTS = {"port": 1883, "metrics_port": 9883}


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_acl_rule(found: FoundKey) -> bool:
    path = found.path
    return len(path) >= 2 and isinstance(path[-1], int) and str(path[-2]).lower() == "acl"


class _ConfigReader:
    """Validate the settings of one parsed TOML document and collect located problems.

    Each problem reads `FILE:LINE: what is wrong. How to fix it.` The line is left out
    when the file's text is not given or the key cannot be found in it, for example
    inside an inline table.
    """

    def __init__(self, document: Mapping[str, Any], source: str, text: str | None) -> None:
        self.source = source
        self.text = text
        self.every_key = list(iter_keys(document))
        self.problems: list[str] = []
        # The first place each settings key is set, by lower-case name.
        self.found: dict[str, FoundKey] = {}

    def spell(self, name: str) -> str:
        """Return the key as the file writes it, or the lower-case name when the file lacks it."""
        found = self.found.get(name)
        return found.key if found is not None else name

    def where(self, found: FoundKey | None) -> str:
        """Return 'FILE:LINE' for a key, or 'FILE' when its line is unknown."""
        if found is None or self.text is None:
            return self.source
        # NOTE: occurrences are counted in parse order. That differs from file order when a
        # table is continued after another one, so the line may then point at a sibling.
        same_name = [item for item in self.every_key if item.name == found.name]
        occurrence = same_name.index(found) if found in same_name else 0
        position = locate_key(self.text, found.key, occurrence)
        if position is None and isinstance(found.value, list):
            position = locate_table(self.text, found.key)
        return self.source if position is None else f"{self.source}:{position[0]}"

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def collect_values(self) -> dict[str, Any]:
        """Return each settings key's value; a key set twice to different values is a problem."""
        values: dict[str, Any] = {}
        for item in self.every_key:
            if item.name not in _SETTINGS_KEYS or _in_acl_rule(item):
                continue
            first = self.found.get(item.name)
            if first is None:
                self.found[item.name] = item
                values[item.name] = item.value
            elif first.value != item.value:
                first_line = self.where(first).removeprefix(self.source).lstrip(":")
                first_at = f" (line {first_line})" if first_line else ""
                self.add(self.where(item),
                         f"{item.key} is set twice with different values: {first.dotted} = {first.value!r}{first_at} "
                         f"and {item.dotted} = {item.value!r}. Keep one of them.")
        return values

    def read_pool(self, values: dict[str, Any]) -> PoolSettings | None:
        defaults = PoolSettings()
        pool_values = {name: values[name] for name in ALL_POOL_KEYS if name in values}
        notes: dict[str, str] = {}

        # A legacy pool preheats everything, is its own ceiling and never grows. An
        # invalid legacy value derives nothing, so it gives one message, not several.
        legacy = pool_values.get(LEGACY_POOL_KEY)
        if _is_integer(legacy) and legacy >= 1:
            legacy_name = self.spell(LEGACY_POOL_KEY)
            derived = {
                "initial_pool_size": (legacy, f"takes {legacy_name}'s value {legacy}"),
                "max_pool_size": (legacy, f"takes {legacy_name}'s value {legacy}"),
                "max_connections": (
                    max(legacy, defaults.max_connections),
                    f"is the larger of {legacy_name} and {defaults.max_connections}",
                ),
            }
            for name, (value, how) in derived.items():
                if name not in pool_values:
                    pool_values[name] = value
                    notes[name] = f"{name} is not in the file, so it {how}."

        problems = pool_problems(pool_values, self.spell)
        for problem in problems:
            in_file = [self.found[name] for name in problem.keys if name in self.found]
            anchor = in_file[0] if in_file else self.found.get(LEGACY_POOL_KEY)
            explained = [
                notes.get(name, f"{name} is not in the file, so it has its default {getattr(defaults, name)}.")
                for name in problem.keys if name not in self.found
            ]
            self.add(self.where(anchor), " ".join([problem.text, *explained, problem.fix]))
        return None if problems else PoolSettings(**pool_values)

    def read_limits(self, values: dict[str, Any]) -> LimitSettings:
        limits = LimitSettings()
        for name, kind in _LIMIT_KEYS.items():
            if name not in values:
                continue
            value = values[name]
            whole = kind == "int"
            number = "whole number" if whole else "number"
            if not _is_number(value) or value <= 0 or (whole and not _is_integer(value)):
                spelled = self.spell(name)
                self.add(self.where(self.found[name]),
                         f"{spelled} is {value!r} but must be a positive {number}. "
                         f"Set {spelled} to a {number} greater than 0, without quotes; "
                         f"the default is {getattr(limits, name)} {_LIMIT_UNITS[name]}.")
                continue
            limits = replace(limits, **{name: value})
        return limits

    def read_broker(self, values: dict[str, Any]) -> dict[str, Any]:
        broker: dict[str, Any] = {}
        for name in _BROKER_KEYS:
            if name not in values:
                continue
            value, spelled = values[name], self.spell(name)
            where = self.where(self.found[name])
            if name == "host" and not isinstance(value, str):
                self.add(where, f"{spelled} is {value!r} but must be a string. "
                                f'Write the address in quotes, such as {spelled} = "127.0.0.1".')
            elif name in _EXAMPLE_PORTS and not _is_integer(value):
                self.add(where, f"{spelled} is {value!r} but must be an integer. Write a whole number from 0 "
                                f"to 65535 without quotes, such as {spelled} = {_EXAMPLE_PORTS[name]}.")
            elif name in _EXAMPLE_PORTS and not 0 <= value <= 65535:
                self.add(where, f"{spelled} is {value} but must be between 0 and 65535. Set {spelled} to a "
                                "TCP port from 1 to 65535, or to 0 to let the operating system pick a free one.")
            elif name == "sys_interval" and (not _is_number(value) or value < 0):
                wrong = "must be a number of seconds" if not _is_number(value) else "must be 0 or more seconds"
                self.add(where, f"{spelled} is {value!r} but {wrong}. Write the seconds between $SYS "
                                f"publications without quotes or units, such as {spelled} = 10, or 0 to turn them off.")
            else:
                broker[name] = value
        return broker

    def read_access(self, values: dict[str, Any], base: Path | None) -> AccessSettings:
        allow_anonymous = values.get("allow_anonymous", True)
        if not isinstance(allow_anonymous, bool):
            spelled = self.spell("allow_anonymous")
            self.add(self.where(self.found["allow_anonymous"]),
                     f"{spelled} is {allow_anonymous!r} but must be true or false. "
                     f"Write {spelled} = true or {spelled} = false, without quotes.")
            allow_anonymous = False
        password_file = self._password_file(values, base)
        rules = self._rules(values["acl"]) if "acl" in values else ()
        return AccessSettings(allow_anonymous=allow_anonymous, password_file=password_file, rules=rules)

    def _password_file(self, values: dict[str, Any], base: Path | None) -> Path | None:
        raw = values.get("password_file")
        if raw is None:
            return None
        spelled = self.spell("password_file")
        where = self.where(self.found["password_file"])
        if not isinstance(raw, str) or not raw:
            self.add(where, f"{spelled} is {raw!r} but must be a path. "
                            f'Write the path in quotes, such as {spelled} = "passwd".')
            return None
        path = Path(raw)
        if base is None:
            return path
        folder = base.absolute()
        resolved = path if path.is_absolute() else folder / path
        if not resolved.exists():
            self.add(where, f"{spelled} is {raw!r}, but the password file {resolved} was not found. "
                            f"Create it with 'mosquitto_passwd -c {resolved} USER', or set {spelled} to an "
                            f"existing file; a relative path is read from {folder}.")
        return resolved

    def _rules(self, raw: Any) -> tuple[AccessRule, ...]:
        table = self.found["acl"]
        if not isinstance(raw, list) or not all(isinstance(entry, Mapping) for entry in raw):
            self.add(self.where(table), f"{table.key} must be an array of tables ([[{table.key}]]), not {raw!r}. "
                                        f"Write each rule as its own [[{table.key}]] table with a topic and, "
                                        "where needed, user, access and allow.")
            return ()
        rules = []
        for index, entry in enumerate(raw):
            rule = self._rule(table, index, {key.lower(): (key, value) for key, value in entry.items()})
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def _rule(self, table: FoundKey, index: int, entry: dict[str, tuple[str, Any]]) -> AccessRule | None:
        def where(name: str) -> str:
            return self._where_in_rule(table.key, index, entry[name][0] if name in entry else None)

        prefix = f"{table.key}[{index}]"
        problems_before = len(self.problems)
        user = entry.get("user", ("user", "*"))[1]
        if not isinstance(user, str) or not user:
            self.add(where("user"), f"{prefix}.user is {user!r} but must be a user name. "
                                    "Write the name in quotes, or \"*\" for every client.")
        access = entry.get("access", ("access", "readwrite"))[1]
        access = access.lower() if isinstance(access, str) else access
        if access not in ("publish", "subscribe", "readwrite"):
            self.add(where("access"), f"{prefix}.access is {access!r} but must be publish, subscribe or readwrite. "
                                      "Use one of these; without access the rule applies to both directions.")
        topic = entry.get("topic", ("topic", None))[1]
        if not isinstance(topic, str) or not topic:
            self.add(where("topic"), f"{prefix}.topic is missing. Give a topic filter such as 'sensors/#'.")
        else:
            try:
                validate_topic_filter(topic)
            except InvalidTopicError as error:
                reason = str(error).rstrip(".")
                self.add(where("topic"), f"{prefix}.topic is {topic!r}, which is not a valid topic filter: {reason}. "
                                         "Give a topic filter such as 'sensors/#'.")
        allow = entry.get("allow", ("allow", True))[1]
        if not isinstance(allow, bool):
            self.add(where("allow"), f"{prefix}.allow is {allow!r} but must be true or false. "
                                     "Write allow = true or allow = false, without quotes.")
        if len(self.problems) > problems_before:
            return None
        return AccessRule(user=user, topic=topic, publish=access in ("publish", "readwrite"),
                          subscribe=access in ("subscribe", "readwrite"), allow=allow)

    def _where_in_rule(self, table_key: str, index: int, key: str | None) -> str:
        """Return 'FILE:LINE' for a key of the rule [[acl]] number `index`, or of its header."""
        if self.text is None:
            return self.source
        header = locate_table(self.text, table_key, index)
        if header is None:
            return self.where(self.found.get("acl"))
        line = header[0]
        if key is not None:
            lines = self.text.splitlines()
            for number in range(line + 1, len(lines) + 1):
                if lines[number - 1].lstrip().startswith("["):
                    break
                if locate_key(lines[number - 1], key) is not None:
                    line = number
                    break
        return f"{self.source}:{line}"

    def near_misses(self) -> list[str]:
        """Return one warning per unknown key that looks like a misspelt known key."""
        warnings = []
        for found in self.every_key:
            in_rule = _in_acl_rule(found)
            known = _ACL_RULE_KEYS if in_rule else _SETTINGS_KEYS
            if found.name in known:
                continue
            match = closest_key(found.name, known)
            if match is None:
                continue
            suggestion = match.upper() if found.key.isupper() else match
            ignored = "not a key of an access rule, so the rule ignores it" if in_rule else "not a broker setting, so the broker ignores it"
            warnings.append(f"{self.where(found)}: {found.key} is {ignored}. Did you mean {suggestion}?")
        return warnings


def config_from_document(
    document: Mapping[str, Any], source: str = "<config>", base: Path | None = None, text: str | None = None
) -> BrokerConfig:
    """Build a BrokerConfig from a parsed TOML document, validating every value.

    With the file's `text`, each error and warning names the line of its key. With `base`,
    a relative password_file is read from that folder and must exist. Raises SettingsError
    with every problem found, one per line.
    """
    reader = _ConfigReader(document, source, text)
    values = reader.collect_values()
    pool = reader.read_pool(values)
    limits = reader.read_limits(values)
    broker = reader.read_broker(values)
    access = reader.read_access(values, base)
    near_misses = reader.near_misses()
    if reader.problems or pool is None:
        # A misspelt key is often the cause of the errors it leaves behind, so it comes first.
        raise SettingsError([*near_misses, *reader.problems])
    return BrokerConfig(pool=pool, limits=limits, access=access, warnings=tuple(near_misses), **broker)


_TOML_POSITION = re.compile(r"at line (\d+), column (\d+)")


def load_config(path: Path | str | None) -> BrokerConfig:
    """Read a broker config from a TOML file; None gives the built-in defaults.

    Unknown keys that look like misspelt settings come back in BrokerConfig.warnings.
    """
    if path is None:
        return BrokerConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError([f"The config file {path} was not found. Check the path."]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError([f"The config file {path} could not be read: {error}. Check the path and its permissions."]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        position = _TOML_POSITION.search(str(error))
        where = f"{path}:{position.group(1)}" if position else str(path)
        raise SettingsError(
            [f"{where}: {path.name} is not valid TOML: {error}. Correct the syntax at that position."]
        ) from None
    config = config_from_document(document, str(path), base=path.parent, text=text)
    return replace(config, source=path)
