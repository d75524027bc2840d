"""Deployment presets, stored as TOML files beside this module, and their loader."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from broker.config import LIMIT_KEYS, POOL_KEYS, PoolSettings, check_pool

# Presets in the order a listing shows them.
PRESET_NAMES = ("default", "small", "medium", "large")


class UnknownScenarioError(LookupError):
    """No preset has the requested name."""


@dataclass(frozen=True, slots=True)
class Target:
    """A memory target stated for the Zig broker, at a connection count or a pool capacity.

    `max_mb` is compared with the broker's RSS growth above its own baseline. `min_mb` is
    the low end where the source gives a range; it is shown, never enforced.
    """

    label: str
    max_mb: float
    connections: int | None = None
    pool_capacity: int | None = None
    min_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A preset: the pool values it sets and the memory targets that go with them."""

    name: str
    description: str
    values: dict[str, int]
    targets: tuple[Target, ...]

    def apply(self, pool: PoolSettings) -> PoolSettings:
        """Return `pool` with this preset's values set and every other value kept."""
        return replace(pool, **self.values)

    @property
    def pool_values(self) -> dict[str, int]:
        """The preset's pool keys (initial and max pool size)."""
        return {k: v for k, v in self.values.items() if k in POOL_KEYS}

    @property
    def limit_values(self) -> dict[str, int]:
        """The preset's other keys (max connections, io entries, forward batch size)."""
        return {k: v for k, v in self.values.items() if k in LIMIT_KEYS}


def _parse(name: str, document: dict[str, Any]) -> Scenario:
    values = {key.lower(): value for key, value in document.get("pool", {}).items()}
    problems = check_pool(values)
    if problems:
        raise ValueError(f"The bundled preset {name} is invalid: {' '.join(problems)}")
    targets = tuple(Target(**entry) for entry in document.get("targets", []))
    return Scenario(name=document.get("name", name), description=document.get("description", ""), values=values, targets=targets)


def load(name: str) -> Scenario:
    """Load the preset called `name`."""
    if name not in PRESET_NAMES:
        raise UnknownScenarioError(f"There is no preset named {name!r}; choose one of {', '.join(PRESET_NAMES)}.")
    text = resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return _parse(name, tomllib.loads(text))


def load_all() -> list[Scenario]:
    """Load every preset, in listing order."""
    return [load(name) for name in PRESET_NAMES]
