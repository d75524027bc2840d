"""The dynamic client pool: growth, ceiling, direct slots, legacy mode and accounting."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from broker.config import PoolSettings, SettingsError
from broker.pool import ClientPool


class Slot:
    """A stand-in for a connection record; each instance has its own identity."""

    serial = itertools.count()

    def __init__(self) -> None:
        self.number = next(Slot.serial)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, old: int, new: int, live: int) -> None:
        self.calls.append((old, new, live))


def test_preheat_creates_initial_slots() -> None:
    created: list[Slot] = []

    def factory() -> Slot:
        created.append(Slot())
        return created[-1]

    pool = ClientPool(PoolSettings(initial_pool_size=8, max_pool_size=20, max_connections=30), factory)
    assert created == []
    pool.preheat()
    assert len(created) == 8
    assert pool.capacity == 8
    assert pool.preheated == 8
    assert pool.free == 8
    assert pool.live == 0
    pool.preheat()
    assert len(created) == 8


def test_capacity_grows_from_current_capacity() -> None:
    recorder = Recorder()
    pool = ClientPool(
        PoolSettings(initial_pool_size=1024, max_pool_size=5000, max_connections=6000), Slot, recorder
    )
    pool.preheat()
    capacities = [pool.capacity]
    slots = []
    for _ in range(5000):
        slots.append(pool.acquire())
        if pool.capacity != capacities[-1]:
            capacities.append(pool.capacity)
        # Every slot created by preheating belongs to the pool, so the two never drift.
        assert pool.preheated == pool.capacity

    assert capacities == [1024, 1536, 2304, 3456, 5000]
    assert pool.expansions == 4
    assert recorder.calls == [
        (1024, 1536, 820),
        (1536, 2304, 1229),
        (2304, 3456, 1844),
        (3456, 5000, 2765),
    ]
    assert pool.direct == 0
    assert all(slot is not None for slot in slots)


def test_growth_never_preheats_past_new_capacity() -> None:
    # Computing growth from initial_pool_size would stick at 1536 and preheat 512 more
    # slots on every accept past the threshold.
    recorder = Recorder()
    pool = ClientPool(
        PoolSettings(initial_pool_size=1024, max_pool_size=100_000, max_connections=100_000),
        Slot,
        recorder,
    )
    for _ in range(1229):
        pool.acquire()
    assert pool.capacity == 1536
    assert pool.preheated == 1536
    assert pool.free == 1536 - 1229
    assert recorder.calls == [(1024, 1536, 820)]

    pool.acquire()
    assert pool.capacity == 2304
    assert pool.preheated == 2304
    assert len(recorder.calls) == 2


def test_threshold_uses_exact_integer_math() -> None:
    # 7 % of 100 is 7 live slots, but the float 7 / 100 * 100 is 7.000000000000001.
    recorder = Recorder()
    pool = ClientPool(
        PoolSettings(initial_pool_size=100, max_pool_size=1000, max_connections=1000,
                     expansion_threshold_percent=7),
        Slot,
        recorder,
    )
    for _ in range(7):
        pool.acquire()
    assert pool.capacity == 100
    pool.acquire()
    assert pool.capacity == 150
    assert recorder.calls == [(100, 150, 7)]


def test_threshold_hundred_grows_only_when_full() -> None:
    pool = ClientPool(
        PoolSettings(initial_pool_size=4, max_pool_size=10, max_connections=10,
                     expansion_threshold_percent=100),
        Slot,
    )
    for _ in range(4):
        pool.acquire()
    assert pool.capacity == 4
    assert pool.free == 0
    pool.acquire()
    assert pool.capacity == 6


def test_connections_past_ceiling_are_direct() -> None:
    recorder = Recorder()
    pool = ClientPool(PoolSettings(initial_pool_size=4, max_pool_size=9, max_connections=12), Slot, recorder)
    pool.preheat()
    slots = [pool.acquire() for _ in range(12)]

    assert all(slot is not None for slot in slots)
    assert len({id(slot) for slot in slots}) == 12
    assert pool.capacity == 9
    assert pool.preheated == 9
    assert pool.direct == 3
    assert pool.live == 12
    assert pool.free == 0
    assert recorder.calls == [(4, 6, 4), (6, 9, 5)]


def test_acquire_returns_none_at_max_connections() -> None:
    pool = ClientPool(PoolSettings(initial_pool_size=4, max_pool_size=9, max_connections=12), Slot)
    slots = [pool.acquire() for _ in range(12)]
    assert pool.acquire() is None
    assert pool.acquire() is None
    assert pool.live == 12

    pool.release(slots[0])
    assert pool.acquire() is not None
    assert pool.acquire() is None


def test_release_reuses_pooled_slots() -> None:
    pool = ClientPool(PoolSettings(initial_pool_size=4, max_pool_size=4, max_connections=6), Slot)
    pooled = [pool.acquire() for _ in range(4)]
    for slot in pooled:
        pool.release(slot)
    again = [pool.acquire() for _ in range(4)]

    assert {id(slot) for slot in again} == {id(slot) for slot in pooled}
    assert pool.preheated == 4
    assert pool.direct == 0


def test_release_drops_direct_slots() -> None:
    pool = ClientPool(PoolSettings(initial_pool_size=2, max_pool_size=2, max_connections=4), Slot)
    pooled = [pool.acquire() for _ in range(2)]
    direct = [pool.acquire() for _ in range(2)]
    assert pool.direct == 2

    for slot in direct:
        pool.release(slot)
    assert pool.direct == 0
    assert pool.free == 0
    assert pool.live == 2

    for slot in pooled:
        pool.release(slot)
    assert pool.free == 2
    assert pool.live == 0
    replacement = [pool.acquire() for _ in range(3)]
    assert {id(slot) for slot in replacement[:2]} == {id(slot) for slot in pooled}
    assert all(replacement[2] is not slot for slot in direct)
    assert pool.direct == 1


def test_release_rejects_unknown_and_double_release() -> None:
    pool = ClientPool(PoolSettings(initial_pool_size=2, max_pool_size=2, max_connections=4), Slot)
    slot = pool.acquire()
    with pytest.raises(ValueError, match="not a live slot"):
        pool.release(Slot())
    pool.release(slot)
    with pytest.raises(ValueError, match="released already"):
        pool.release(slot)
    assert pool.live == 0
    assert pool.free == 2


def test_legacy_preheats_everything_and_never_grows() -> None:
    recorder = Recorder()
    created: list[Slot] = []

    def factory() -> Slot:
        created.append(Slot())
        return created[-1]

    pool = ClientPool(PoolSettings(max_clients_pool=50, max_connections=60), factory, recorder)
    pool.preheat()
    assert len(created) == 50
    assert pool.capacity == 50

    slots = [pool.acquire() for _ in range(60)]
    assert all(slot is not None for slot in slots)
    assert pool.capacity == 50
    assert pool.preheated == 50
    assert pool.expansions == 0
    assert pool.direct == 10
    assert recorder.calls == []
    assert pool.acquire() is None


def test_acquire_preheats_when_not_called() -> None:
    pool = ClientPool(PoolSettings(initial_pool_size=3, max_pool_size=3, max_connections=3), Slot)
    assert pool.acquire() is not None
    assert pool.preheated == 3
    assert pool.free == 2


@pytest.mark.parametrize(
    ("settings_", "fragment"),
    [
        (PoolSettings(initial_pool_size=0), "INITIAL_POOL_SIZE is 0"),
        (PoolSettings(initial_pool_size=10, max_pool_size=5, max_connections=5), "cannot start above"),
        (PoolSettings(max_pool_size=10, max_connections=5), "pool ceiling cannot exceed"),
        (PoolSettings(growth_factor=1.0), "GROWTH_FACTOR is 1.0"),
        (PoolSettings(expansion_threshold_percent=0), "EXPANSION_THRESHOLD_PERCENT is 0"),
    ],
)
def test_pool_rejects_invalid_settings(settings_: PoolSettings, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        ClientPool(settings_, Slot)


def expected_capacities(pool_settings: PoolSettings) -> list[int]:
    """List every capacity the pool may take, in order, from the start to the ceiling."""
    if pool_settings.legacy:
        return [pool_settings.max_clients_pool]
    steps = [pool_settings.initial_pool_size]
    while steps[-1] < pool_settings.max_pool_size:
        steps.append(pool_settings.next_capacity(steps[-1]))
    return steps


@st.composite
def pool_settings(draw: st.DrawFn) -> PoolSettings:
    connections = draw(st.integers(min_value=1, max_value=40))
    if draw(st.booleans()):
        return PoolSettings(max_clients_pool=draw(st.integers(1, connections)), max_connections=connections)
    ceiling = draw(st.integers(min_value=1, max_value=connections))
    return PoolSettings(
        initial_pool_size=draw(st.integers(min_value=1, max_value=ceiling)),
        max_pool_size=ceiling,
        max_connections=connections,
        expansion_threshold_percent=draw(st.integers(min_value=1, max_value=100)),
        growth_factor=draw(st.sampled_from([1.01, 1.25, 1.5, 2.0, 3.0])),
    )


class PoolMachine(RuleBasedStateMachine):
    """Random acquire/release sequences checked against the pool's invariants."""

    @initialize(pool_settings=pool_settings())
    def start(self, pool_settings: PoolSettings) -> None:
        self.settings = pool_settings
        self.recorder = Recorder()
        self.pool = ClientPool(pool_settings, Slot, self.recorder)
        self.pool.preheat()
        self.steps = expected_capacities(pool_settings)
        self.held: list[Slot] = []
        self.last_capacity = self.pool.capacity

    @rule()
    def acquire(self) -> None:
        live_before = self.pool.live
        capacity_before = self.pool.capacity
        slot = self.pool.acquire()

        if live_before >= self.settings.max_connections:
            assert slot is None
            return
        assert slot is not None
        assert all(slot is not other for other in self.held)
        self.held.append(slot)

        should_grow = (
            not self.settings.legacy
            and capacity_before < self.settings.max_pool_size
            and live_before * 100 >= self.settings.expansion_threshold_percent * capacity_before
        )
        if should_grow:
            assert self.pool.capacity == self.settings.next_capacity(capacity_before)
            assert self.recorder.calls[-1] == (capacity_before, self.pool.capacity, live_before)
        else:
            assert self.pool.capacity == capacity_before

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0))
    def release(self, index: int) -> None:
        slot = self.held.pop(index % len(self.held))
        self.pool.release(slot)

    @invariant()
    def live_within_max_connections(self) -> None:
        assert self.pool.live <= self.settings.max_connections
        assert self.pool.live == len(self.held)

    @invariant()
    def capacity_never_shrinks_and_follows_steps(self) -> None:
        assert self.pool.capacity >= self.last_capacity
        self.last_capacity = self.pool.capacity
        assert self.pool.capacity in self.steps
        assert self.pool.expansions == self.steps.index(self.pool.capacity)
        assert len(self.recorder.calls) == self.pool.expansions

    @invariant()
    def accounting_adds_up(self) -> None:
        pool = self.pool
        assert pool.preheated == pool.capacity
        assert pool.free + (pool.live - pool.direct) == pool.capacity
        assert pool.direct >= 0
        if pool.direct:
            # Direct slots are made only once the pool has reached its ceiling.
            assert pool.capacity == (self.settings.max_clients_pool if self.settings.legacy
                                     else self.settings.max_pool_size)


PoolMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=60, deadline=None, database=None)
test_pool_state_machine = PoolMachine.TestCase
