"""The client pool: slot objects preheated at startup that grows on demand.

Capacity starts at `initial_pool_size`. Before each accept the pool checks whether the
live connections reach `expansion_threshold_percent` of the capacity while the capacity
is below `max_pool_size`. If so, the capacity grows by `growth_factor` from its current
value (1024, 1536, 2304, 3456, ...), capped at `max_pool_size`, and the new slots are
preheated.
Past the ceiling, connections get slots allocated directly, outside the pool, until
`max_connections` are live. A legacy config (`max_clients_pool`) preheats that many
slots and never grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Generic, TypeVar

from broker.config import PoolSettings, SettingsError, check_pool

T = TypeVar("T")


class ClientPool(Generic[T]):
    """Slot objects for client connections, reused across connections.

    `factory` makes one slot. `on_expand(old_capacity, new_capacity, live)` is called once
    per expansion, after the new slots exist.
    """

    def __init__(
        self,
        settings: PoolSettings,
        factory: Callable[[], T],
        on_expand: Callable[[int, int, int], None] | None = None,
    ) -> None:
        values = {f.name: getattr(settings, f.name) for f in fields(settings)}
        if settings.legacy:
            # A legacy pool is its own start and ceiling; the dynamic sizes do not apply.
            values["initial_pool_size"] = values["max_pool_size"] = settings.max_clients_pool
        problems = check_pool(values)
        if problems:
            raise SettingsError(problems, "pool settings")
        self._settings = settings
        self._factory = factory
        self._on_expand = on_expand
        self._capacity = settings.max_clients_pool if settings.legacy else settings.initial_pool_size
        self._preheated = 0
        self._expansions = 0
        self._free: list[T] = []
        # Keyed by id(); the dicts hold the objects, so an id cannot be reused while listed.
        self._in_use: dict[int, T] = {}
        self._direct: dict[int, T] = {}

    @property
    def settings(self) -> PoolSettings:
        return self._settings

    @property
    def capacity(self) -> int:
        """Number of pooled slots, free and in use."""
        return self._capacity

    @property
    def live(self) -> int:
        """Number of slots handed out and not yet released, pooled and direct."""
        return len(self._in_use) + len(self._direct)

    @property
    def preheated(self) -> int:
        """Total slots created by preheating, at startup and at every expansion."""
        return self._preheated

    @property
    def expansions(self) -> int:
        """Number of times the capacity grew."""
        return self._expansions

    @property
    def direct(self) -> int:
        """Live slots allocated outside the pool because it had reached its ceiling."""
        return len(self._direct)

    @property
    def free(self) -> int:
        """Pooled slots ready to hand out."""
        return len(self._free)

    def preheat(self) -> None:
        """Create slots until the pool contains `capacity` of them; a second call adds none."""
        missing = self._capacity - self._preheated
        self._free.extend(self._factory() for _ in range(missing))
        self._preheated += missing

    def acquire(self) -> T | None:
        """Hand out a slot for a new connection, or None when `max_connections` are live.

        Preheats first if `preheat` was never called.
        """
        if self._preheated < self._capacity:
            self.preheat()
        live = self.live
        if live >= self._settings.max_connections:
            return None

        self._grow_if_needed(live)

        if self._free:
            slot = self._free.pop()
            self._in_use[id(slot)] = slot
            return slot
        slot = self._factory()
        self._direct[id(slot)] = slot
        return slot

    def release(self, slot: T) -> None:
        """Take back a slot; a pooled one is kept for reuse and a direct one is dropped.

        Raises ValueError for an object this pool did not hand out or that was already
        released, because counting it would corrupt `live`.
        """
        key = id(slot)
        if self._in_use.get(key) is slot:
            del self._in_use[key]
            self._free.append(slot)
        elif self._direct.get(key) is slot:
            del self._direct[key]
        else:
            raise ValueError(
                f"{slot!r} is not a live slot of this pool; it was released already "
                "or came from somewhere else."
            )

    def _grow_if_needed(self, live: int) -> None:
        """Expand once when `live` reached the threshold share of the capacity."""
        settings = self._settings
        if settings.legacy or self._capacity >= settings.max_pool_size:
            return
        # Integer math, so 80 % of 1024 is reached at exactly 820 live slots.
        if live * 100 < settings.expansion_threshold_percent * self._capacity:
            return

        # Grow from the current capacity, never from initial_pool_size, or the pool would
        # stop growing after one step and preheat the same increment on every accept.
        old = self._capacity
        self._capacity = settings.next_capacity(old)
        self.preheat()
        self._expansions += 1
        if self._on_expand is not None:
            self._on_expand(old, self._capacity, live)
