"""Rules that pool sizes and limits must follow, stated as problems with their fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.settings import LEGACY_POOL_KEY, LIMIT_KEYS, MAX_IO_ENTRIES, POOL_KEYS, PoolSettings

@dataclass(frozen=True, slots=True)
class PoolProblem:
    """One pool rule that the values break.

    `keys` are the lower-case keys involved, the one to point at first. `text` states
    what is wrong with the values, and `fix` how to make them valid.
    """

    keys: tuple[str, ...]
    text: str
    fix: str


def pool_problems(values: Mapping[str, Any], spell: Callable[[str], str] = str.upper) -> list[PoolProblem]:
    """Return one PoolProblem per rule that the pool values break; empty when they are valid.

    `values` maps lower-case keys to numbers; missing keys take PoolSettings' defaults.
    `spell` turns a lower-case key into the name that the sentences print. The legacy key
    is checked only for being a positive integer.
    """
    defaults = PoolSettings()
    get = lambda name: values.get(name, getattr(defaults, name))  # noqa: E731
    problems: list[PoolProblem] = []

    # Step 1: types. The range rules below compare numbers, so they wait for valid types.
    for name in (*POOL_KEYS, *LIMIT_KEYS, "expansion_threshold_percent", LEGACY_POOL_KEY):
        value = values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            example = 100_000 if name == LEGACY_POOL_KEY else getattr(defaults, name)
            problems.append(PoolProblem(
                (name,), f"{spell(name)} must be an integer, not {value!r}.",
                f"Write a whole number without quotes, such as {spell(name)} = {example:_}.",
            ))
    factor = values.get("growth_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
        problems.append(PoolProblem(
            ("growth_factor",), f"{spell('growth_factor')} must be a number, not {factor!r}.",
            f"Write a number greater than 1 without quotes, such as {spell('growth_factor')} = 1.5.",
        ))
    if problems:
        return problems

    # Step 2: each value within its range and the sizes in order:
    # 1 <= initial_pool_size <= max_pool_size <= max_connections.
    initial, ceiling, connections = get("initial_pool_size"), get("max_pool_size"), get("max_connections")
    initial_name, ceiling_name, connections_name = spell("initial_pool_size"), spell("max_pool_size"), spell("max_connections")
    legacy = values.get(LEGACY_POOL_KEY)
    if legacy is not None and legacy < 1:
        problems.append(PoolProblem(
            (LEGACY_POOL_KEY,), f"{spell(LEGACY_POOL_KEY)} is {legacy} but must be at least 1.",
            f"Set {spell(LEGACY_POOL_KEY)} to at least 1, or run 'poolmigrate convert' to replace it "
            f"with {initial_name} and {ceiling_name}.",
        ))
    if initial < 1:
        problems.append(PoolProblem(
            ("initial_pool_size",), f"{initial_name} is {initial} but must be at least 1.",
            f"Set {initial_name} to a whole number from 1 to {ceiling_name} ({ceiling}); the default is {defaults.initial_pool_size}.",
        ))
    if initial > ceiling:
        problems.append(PoolProblem(
            ("initial_pool_size", "max_pool_size"),
            f"{initial_name} is {initial} but {ceiling_name} is only {ceiling}; the pool cannot start above its ceiling.",
            f"Set {ceiling_name} to at least {initial} or lower {initial_name} to at most {ceiling}; "
            f"'poolmigrate presets' lists sizes that fit together.",
        ))
    if ceiling > connections:
        problems.append(PoolProblem(
            ("max_connections", "max_pool_size"),
            f"{connections_name} is {connections} but {ceiling_name} would be {ceiling}; the pool ceiling cannot exceed the connection cap.",
            f"Set {connections_name} to at least {ceiling} or lower {ceiling_name} to at most {connections}; "
            f"'poolmigrate presets' lists sizes that fit together.",
        ))
    if connections < 1:
        problems.append(PoolProblem(
            ("max_connections",), f"{connections_name} is {connections} but must be at least 1.",
            f"Set {connections_name} to at least 1 and at least {ceiling_name}; the default is {defaults.max_connections}.",
        ))

    # Step 3: the limits and growth keys, each on its own.
    io_entries = get("io_entries")
    if not 1 <= io_entries <= MAX_IO_ENTRIES:
        problems.append(PoolProblem(
            ("io_entries",),
            f"{spell('io_entries')} is {io_entries} but must be between 1 and {MAX_IO_ENTRIES} (it is a u12 in the Zig broker).",
            f"Set {spell('io_entries')} to a whole number from 1 to {MAX_IO_ENTRIES}; the default is {defaults.io_entries}.",
        ))
    batch = get("forward_batch_size")
    if batch < 1:
        problems.append(PoolProblem(
            ("forward_batch_size",), f"{spell('forward_batch_size')} is {batch} but must be at least 1.",
            f"Set {spell('forward_batch_size')} to at least 1; the default is {defaults.forward_batch_size}.",
        ))
    threshold = get("expansion_threshold_percent")
    if not 1 <= threshold <= 100:
        problems.append(PoolProblem(
            ("expansion_threshold_percent",),
            f"{spell('expansion_threshold_percent')} is {threshold} but must be between 1 and 100.",
            f"Set {spell('expansion_threshold_percent')} to a whole number from 1 to 100; the default is {defaults.expansion_threshold_percent}.",
        ))
    factor = get("growth_factor")
    if not factor > 1:
        problems.append(PoolProblem(
            ("growth_factor",),
            f"{spell('growth_factor')} is {factor} but must be greater than 1, or the pool could never grow.",
            f"Set {spell('growth_factor')} to a number greater than 1; the default is {defaults.growth_factor}.",
        ))
    return problems


def check_pool(values: Mapping[str, Any]) -> list[str]:
    """Return one sentence per rule that the pool values break; empty when they are valid.

    `values` maps lower-case keys to numbers; missing keys take PoolSettings' defaults.
    The sentences name keys by their upper-case constant names, as in a Zig config.
    """
    return [problem.text for problem in pool_problems(values)]
