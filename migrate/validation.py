"""Validate the values a conversion would leave in a file, one broker at a time, and find fixes that work.

A file may describe several brokers (a fleet file with one `[[brokers]]` element each), so
every unit is checked on its own: the values the conversion writes, over the values the
file gives that unit. An error points at the line of the value to blame: the file's
value, or the line the new value goes to when a flag or the preset is to blame. Each
suggested fix is tried on every unit of the file before it is offered.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scenarios
from broker.config import LEGACY_POOL_KEY, PoolSettings, check_pool
from migrate.number_style import decimal_value

# At most this many fixes are offered, so the message stays short.
MAX_FIXES = 2

# Command-line flags that set a pool key, by key.
_FLAGS = {"initial_pool_size": "--initial-pool-size", "max_pool_size": "--max-pool-size"}


@dataclass(frozen=True, slots=True)
class FileValue:
    """A setting as the file writes it: its value, line, key spelling and whole statement."""

    value: Any
    line: int
    key: str
    written: str


@dataclass(frozen=True, slots=True)
class Unit:
    """The settings of one broker in a file: the line of its legacy key and the values the file gives it."""

    line: int
    values: dict[str, FileValue]


def check_legacy(path: Path, unit: Unit) -> str | None:
    """Return the error for a legacy value the legacy broker would reject, or None when it is valid."""
    legacy = unit.values.get(LEGACY_POOL_KEY)
    if legacy is None:
        return None
    problems = check_pool({LEGACY_POOL_KEY: legacy.value})
    if not problems:
        return None
    fix = _rewrite_fix(legacy, PoolSettings().max_pool_size)
    return f"{path}:{legacy.line}: {' '.join(problems)} To fix it, {fix}, then run the command again. Nothing was written."


def check_units(path: Path, units: list[Unit], options: Any) -> str | None:
    """Return the error for the first unit whose converted values break a pool rule, or None."""
    for unit in units:
        problems = check_pool(_converted_values(unit, options))
        if problems:
            return _message(path, unit, units, problems, options)
    return None


def _converted_values(unit: Unit, options: Any) -> dict[str, Any]:
    values = {name: item.value for name, item in unit.values.items() if name != LEGACY_POOL_KEY}
    values.update(options.target_values())
    return values


def _valid_everywhere(units: list[Unit], options: Any) -> bool:
    try:
        return all(not check_pool(_converted_values(unit, options)) for unit in units)
    except scenarios.UnknownScenarioError:
        return False


def _mentioned_keys(problem: str) -> list[str]:
    """Return the lower-case keys a problem sentence names, in the order it names them."""
    return [word.lower() for word in re.findall(r"\b[A-Z][A-Z_]+[A-Z]\b", problem)]


def _blamed_flags(problems: list[str], options: Any) -> list[str]:
    flags = []
    for problem in problems:
        for key in _mentioned_keys(problem):
            if key in _FLAGS and getattr(options, key) is not None and key not in flags:
                flags.append(key)
    return flags


def _file_value_to_blame(unit: Unit, problems: list[str], options: Any) -> FileValue | None:
    """Return the first value a problem names that comes from the file, not from the conversion."""
    written = options.target_values()
    for problem in problems:
        for key in _mentioned_keys(problem):
            if key not in written and key in unit.values:
                return unit.values[key]
    return None


def _message(path: Path, unit: Unit, units: list[Unit], problems: list[str], options: Any) -> str:
    blamed_value = _file_value_to_blame(unit, problems, options)
    line = blamed_value.line if blamed_value is not None else unit.line
    flags = _blamed_flags(problems, options)

    if flags:
        flag_text = " and ".join(f"{_FLAGS[key]} {getattr(options, key)}" for key in flags)
        subject = f"{flag_text} is invalid: " if len(flags) == 1 else f"{flag_text} are invalid together: "
        sentences = " ".join(_drop_repeated_value(problem, flags, options) for problem in problems)
    else:
        subject = ""
        sentences = " ".join(problems)

    type_fixes = _type_fixes(unit, problems)
    if type_fixes:
        fix_text = f" To fix it, {' and '.join(type_fixes)}."
    else:
        fixes = _working_fixes(unit, units, flags, options)
        if fixes:
            fix_text = f" To fix it, {_join_fixes(fixes)}."
        elif blamed_value is not None:
            fix_text = f" To fix it, change `{blamed_value.written}` on line {blamed_value.line} so the values fit."
        else:
            fix_text = " To fix it, choose values that fit these rules."
    return f"{path}:{line}: {subject}{sentences}{fix_text} Nothing was written."


def _drop_repeated_value(problem: str, flags: list[str], options: Any) -> str:
    """Turn "INITIAL_POOL_SIZE is 0 but must be" into "INITIAL_POOL_SIZE must be" once the flag shows the 0."""
    for key in flags:
        prefix = f"{key.upper()} is {getattr(options, key)} but "
        if problem.startswith(prefix + "must be"):
            return f"{key.upper()} {problem[len(prefix):]}"
    return problem


def _type_fixes(unit: Unit, problems: list[str]) -> list[str]:
    """Return a rewrite of each file value that is not a number, when the problems are about types."""
    fixes = []
    defaults = PoolSettings()
    for problem in problems:
        if "must be an integer" not in problem and "must be a number" not in problem:
            continue
        for key in _mentioned_keys(problem)[:1]:
            if key in unit.values:
                fixes.append(_rewrite_fix(unit.values[key], getattr(defaults, key, 1)))
    return fixes


def _rewrite_fix(item: FileValue, example: Any) -> str:
    """Say how to write a value the broker rejects so that it is accepted."""
    value = item.value
    if isinstance(value, str):
        inner = value.strip()
        number = decimal_value(inner)
        if number is not None and number >= 1:
            return f"write it without quotes: {item.key} = {inner}"
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return f"write it as an integer: {item.key} = {int(value)}"
    return f"write a whole number of at least 1, such as {item.key} = {example}"


def _candidates(unit: Unit, flags: list[str], options: Any) -> list[tuple[str, Any]]:
    """Return (fix, options) pairs to try, the smallest change first."""
    values = _converted_values(unit, options)
    defaults = PoolSettings()
    initial = values.get("initial_pool_size", defaults.initial_pool_size)
    ceiling = values.get("max_pool_size", defaults.max_pool_size)
    connections = values.get("max_connections", defaults.max_connections)
    replace = dataclasses.replace
    candidates: list[tuple[str, Any]] = []

    # Step 1: change one number, keeping what the command line asked for.
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (initial, ceiling, connections))
    if numbers and ceiling > connections >= 1:
        if initial > connections:
            candidates.append((f"use --initial-pool-size {connections} --max-pool-size {connections}",
                               replace(options, initial_pool_size=connections, max_pool_size=connections)))
        else:
            candidates.append((f"use --max-pool-size {connections}", replace(options, max_pool_size=connections)))
    if numbers and initial > ceiling:
        if options.initial_pool_size is not None and ceiling >= 1:
            candidates.append((f"use --initial-pool-size {ceiling}", replace(options, initial_pool_size=ceiling)))
        if options.max_pool_size is not None and initial <= connections:
            candidates.append((f"use --max-pool-size {initial}", replace(options, max_pool_size=initial)))
    if numbers and initial < 1 and options.initial_pool_size is not None:
        candidates.append(("use --initial-pool-size 1", replace(options, initial_pool_size=1)))

    # Step 2: drop a flag to get the preset's value.
    for key in flags:
        candidates.append((f"leave out {_FLAGS[key]}", replace(options, **{key: None})))

    # Step 3: another preset, with the same flags.
    for name in scenarios.PRESET_NAMES:
        if name != options.scenario:
            candidates.append((f"use --scenario {name}", replace(options, scenario=name)))

    # Step 4: let the preset set the limit keys too.
    if options.keep_limits:
        candidates.append(("run without --keep-limits", replace(options, keep_limits=False)))
    return candidates


def _working_fixes(unit: Unit, units: list[Unit], flags: list[str], options: Any) -> list[str]:
    fixes = []
    for text, candidate in _candidates(unit, flags, options):
        if candidate != options and _valid_everywhere(units, candidate):
            fixes.append(text)
        if len(fixes) == MAX_FIXES:
            break
    return fixes


def _join_fixes(fixes: list[str]) -> str:
    """Join fixes with "or", saying "use" once when both start with it."""
    if len(fixes) == 2 and all(fix.startswith("use ") for fix in fixes):
        return f"use {fixes[0][4:]} or {fixes[1][4:]}"
    return " or ".join(fixes)
