"""Broker settings: names, defaults, validation and reading them from TOML.

A settings key may sit at top level, in any table, in a dotted key or in an array of
tables, and in any letter case; readers match the lower-case name. The same key found
twice with different values is an error, because the broker would have to guess.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Legacy key: objects preheated at startup, which was also the pool's ceiling.
LEGACY_POOL_KEY = "max_clients_pool"

# The pool keys that replace the legacy key, in the order a converter writes them.
POOL_KEYS = ("initial_pool_size", "max_pool_size")

# Keys that a preset may set beside the pool keys.
LIMIT_KEYS = ("max_connections", "io_entries", "forward_batch_size")

# Pool-growth keys that only the dynamic pool reads.
EXPANSION_KEYS = ("expansion_threshold_percent", "growth_factor")

# Every pool-related key, the legacy one included.
ALL_POOL_KEYS = (LEGACY_POOL_KEY, *POOL_KEYS, *LIMIT_KEYS, *EXPANSION_KEYS)

# IO_ENTRIES is a u12 in the Zig broker, so 4095 is the largest value it can hold.
MAX_IO_ENTRIES = 4095


class SettingsError(ValueError):
    """Invalid settings; `problems` lists each one as a full sentence."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + " ".join(problems))


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Sizes of the client pool and the limits around it."""

    initial_pool_size: int = 1024
    max_pool_size: int = 100_000
    max_connections: int = 1_000_000
    io_entries: int = 4095
    forward_batch_size: int = 5000
    expansion_threshold_percent: int = 80
    growth_factor: float = 1.5
    # Set only by a legacy config: preheat this many slots and never grow.
    max_clients_pool: int | None = None

    @property
    def legacy(self) -> bool:
        return self.max_clients_pool is not None

    def next_capacity(self, capacity: int) -> int:
        """Return the capacity after one expansion from `capacity`, capped at the ceiling."""
        return min(math.ceil(capacity * self.growth_factor), self.max_pool_size)


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Per-connection limits; each protects the broker from one misbehaving client."""

    # MQTT's own ceiling is 268 435 455 bytes; 1 MiB keeps one client's buffer small.
    max_packet_size: int = 1024 * 1024
    # Seconds a new socket may wait before it must have sent CONNECT.
    connect_timeout: float = 10.0
    # QoS 1/2 messages kept for an offline persistent session; older ones are dropped first.
    max_queued_messages: int = 1000
    # Unacknowledged QoS 1/2 deliveries per client; further ones wait in the queue.
    max_inflight_messages: int = 100
    # Bytes buffered for one slow reader before QoS 0 deliveries to it are dropped.
    outgoing_high_water: int = 1024 * 1024
    # A keepalive of 0 from the client disables the check; the broker allows 1.5 times the value.
    keepalive_factor: float = 1.5


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One topic rule: allow or deny publish and/or subscribe for a user ('*' for all)."""

    user: str
    topic: str
    publish: bool
    subscribe: bool
    allow: bool


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Authentication and authorisation."""

    allow_anonymous: bool = True
    password_file: Path | None = None
    rules: tuple[AccessRule, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Everything the broker reads from its TOML config."""

    host: str = "127.0.0.1"
    port: int = 1883
    # Seconds between $SYS publications; 0 turns them off.
    sys_interval: float = 10.0
    # Port of the Prometheus text endpoint on 127.0.0.1; None turns it off.
    metrics_port: int | None = None
    pool: PoolSettings = field(default_factory=PoolSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    source: Path | None = None


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A settings key found in a parsed TOML document."""

    path: tuple[str | int, ...]
    key: str
    value: Any

    @property
    def name(self) -> str:
        return self.key.lower()

    @property
    def dotted(self) -> str:
        parts = [f"[{p}]" if isinstance(p, int) else p for p in (*self.path, self.key)]
        return ".".join(parts).replace(".[", "[")


def iter_keys(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[FoundKey]:
    """Yield every key/value pair of a parsed TOML document, depth first, in file order."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from iter_keys(value, (*path, key))
            elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                yield FoundKey(path, key, value)
                for index, item in enumerate(value):
                    yield from iter_keys(item, (*path, key, index))
            else:
                yield FoundKey(path, key, value)


def find_keys(document: Mapping[str, Any], names: tuple[str, ...]) -> list[FoundKey]:
    """Return the keys of `document` whose lower-case name is in `names`."""
    wanted = set(names)
    return [found for found in iter_keys(document) if found.name in wanted]


def locate_key(text: str, key: str) -> tuple[int, int] | None:
    """Return the 1-based line and column where `key` is assigned in `text`, if found."""
    pattern = re.compile(rf"^[ \t]*(?:[\w\"'.-]+\.)?[\"']?({re.escape(key)})[\"']?[ \t]*=", re.M | re.I)
    match = pattern.search(text)
    if match is None:
        return None
    line = text.count("\n", 0, match.start(1)) + 1
    column = match.start(1) - (text.rfind("\n", 0, match.start(1)) + 1) + 1
    return line, column


def check_pool(values: Mapping[str, Any]) -> list[str]:
    """Return one sentence per rule that the pool values break; empty when they are valid.

    `values` maps lower-case keys to numbers; missing keys take PoolSettings' defaults.
    The legacy key is checked only for being a positive integer.
    """
    defaults = PoolSettings()
    get = lambda name: values.get(name, getattr(defaults, name))  # noqa: E731
    problems: list[str] = []

    for name in (*POOL_KEYS, *LIMIT_KEYS, "expansion_threshold_percent", LEGACY_POOL_KEY):
        value = values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{name.upper()} must be an integer, not {value!r}.")
    factor = values.get("growth_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
        problems.append(f"GROWTH_FACTOR must be a number, not {factor!r}.")
    if problems:
        return problems

    initial, ceiling, connections = get("initial_pool_size"), get("max_pool_size"), get("max_connections")
    legacy = values.get(LEGACY_POOL_KEY)
    if legacy is not None and legacy < 1:
        problems.append(f"MAX_CLIENTS_POOL is {legacy} but must be at least 1.")
    if initial < 1:
        problems.append(f"INITIAL_POOL_SIZE is {initial} but must be at least 1.")
    if initial > ceiling:
        problems.append(f"INITIAL_POOL_SIZE is {initial} but MAX_POOL_SIZE is only {ceiling}; the pool cannot start above its ceiling.")
    if ceiling > connections:
        problems.append(f"MAX_CONNECTIONS is {connections} but MAX_POOL_SIZE would be {ceiling}; the pool ceiling cannot exceed the connection cap.")
    if connections < 1:
        problems.append(f"MAX_CONNECTIONS is {connections} but must be at least 1.")
    io_entries = get("io_entries")
    if not 1 <= io_entries <= MAX_IO_ENTRIES:
        problems.append(f"IO_ENTRIES is {io_entries} but must be between 1 and {MAX_IO_ENTRIES} (it is a u12 in the Zig broker).")
    batch = get("forward_batch_size")
    if batch < 1:
        problems.append(f"FORWARD_BATCH_SIZE is {batch} but must be at least 1.")
    threshold = get("expansion_threshold_percent")
    if not 1 <= threshold <= 100:
        problems.append(f"EXPANSION_THRESHOLD_PERCENT is {threshold} but must be between 1 and 100.")
    factor = get("growth_factor")
    if not factor > 1:
        problems.append(f"GROWTH_FACTOR is {factor} but must be greater than 1, or the pool could never grow.")
    return problems


_BROKER_KEYS = {
    "host": str,
    "port": int,
    "sys_interval": (int, float),
    "metrics_port": int,
}
_LIMIT_KEYS = {f.name: f.type for f in fields(LimitSettings)}
_ACCESS_KEYS = ("allow_anonymous", "password_file", "acl")


def _single_values(found: list[FoundKey], source: str) -> dict[str, Any]:
    """Collapse repeated keys, raising when one key has two different values."""
    values: dict[str, Any] = {}
    where: dict[str, FoundKey] = {}
    for item in found:
        if item.name in values and values[item.name] != item.value:
            first = where[item.name]
            raise SettingsError(
                [f"{item.name} is set twice with different values: {first.dotted} = {first.value!r} "
                 f"and {item.dotted} = {item.value!r}. Keep one of them."],
                source,
            )
        values[item.name] = item.value
        where[item.name] = item
    return values


def _parse_rules(raw: Any, source: str) -> tuple[AccessRule, ...]:
    if not isinstance(raw, list):
        raise SettingsError([f"acl must be an array of tables ([[acl]]), not {raw!r}."], source)
    rules = []
    for index, entry in enumerate(raw):
        access = str(entry.get("access", "readwrite")).lower()
        if access not in ("publish", "subscribe", "readwrite"):
            raise SettingsError(
                [f"acl[{index}].access is {access!r}; use publish, subscribe or readwrite."], source
            )
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic:
            raise SettingsError([f"acl[{index}].topic is missing; give a topic filter such as 'sensors/#'."], source)
        rules.append(
            AccessRule(
                user=str(entry.get("user", "*")),
                topic=topic,
                publish=access in ("publish", "readwrite"),
                subscribe=access in ("subscribe", "readwrite"),
                allow=bool(entry.get("allow", True)),
            )
        )
    return tuple(rules)


def config_from_document(document: Mapping[str, Any], source: str = "<config>", base: Path | None = None) -> BrokerConfig:
    """Build a BrokerConfig from a parsed TOML document, validating every value."""
    names = (*ALL_POOL_KEYS, *_BROKER_KEYS, *_LIMIT_KEYS, *_ACCESS_KEYS)
    values = _single_values(find_keys(document, names), source)

    pool_values = {k: values[k] for k in ALL_POOL_KEYS if k in values}
    legacy = pool_values.get(LEGACY_POOL_KEY)
    if isinstance(legacy, int) and not isinstance(legacy, bool):
        # A legacy pool preheats everything, is its own ceiling and never grows.
        pool_values.setdefault("initial_pool_size", legacy)
        pool_values.setdefault("max_pool_size", legacy)
        pool_values.setdefault("max_connections", max(legacy, PoolSettings().max_connections))
    problems = check_pool(pool_values)
    if problems:
        raise SettingsError(problems, source)
    pool = PoolSettings(**pool_values)

    limits = LimitSettings()
    for name in _LIMIT_KEYS:
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise SettingsError([f"{name} is {value!r} but must be a positive number."], source)
            limits = replace(limits, **{name: value})

    broker: dict[str, Any] = {}
    for name, kind in _BROKER_KEYS.items():
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise SettingsError([f"{name} is {value!r}, which has the wrong type."], source)
            broker[name] = value
    for port_key in ("port", "metrics_port"):
        if port_key in broker and not 0 <= broker[port_key] <= 65535:
            raise SettingsError([f"{port_key} is {broker[port_key]} but must be between 0 and 65535."], source)

    password_file = values.get("password_file")
    if password_file is not None:
        password_file = Path(password_file)
        if base is not None and not password_file.is_absolute():
            password_file = base / password_file
    access = AccessSettings(
        allow_anonymous=bool(values.get("allow_anonymous", True)),
        password_file=password_file,
        rules=_parse_rules(values["acl"], source) if "acl" in values else (),
    )
    return BrokerConfig(pool=pool, limits=limits, access=access, **broker)


def load_config(path: Path | str | None) -> BrokerConfig:
    """Read a broker config from a TOML file; None gives the built-in defaults."""
    if path is None:
        return BrokerConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError([f"The config file {path} was not found. Check the path."]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError([f"The config file {path} could not be read: {error}."]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError([f"{path} is not valid TOML: {error}."]) from None
    config = config_from_document(document, str(path), base=path.parent)
    return replace(config, source=path)
