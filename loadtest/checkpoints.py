"""Checkpoints at which a run measures memory, and the check of those measurements against targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from broker.rss import BYTES_PER_MEGABYTE
from scenarios import Target

# Bytes per megabyte (SI), the unit of the presets' targets and of the broker's log.
MB = BYTES_PER_MEGABYTE

# The first checkpoint; every further one is ten times the previous, up to the run's count.
FIRST_CHECKPOINT = 100

# Target outcomes.
PASSED = "pass"
FAILED = "fail"
NOT_REACHED = "not reached"
NOT_MEASURED = "not measured"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The broker's RSS once the connection count settled at one step of the ramp."""

    target: int
    connections: int
    rss: int | None
    growth: int | None
    pool_capacity: int | None
    elapsed: float
    # The broker's own count from $SYS/broker/clients/connected, the monitor client included.
    broker_connected: int | None = None


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """The moment the broker's $SYS pool capacity changed, with the RSS at that moment."""

    capacity: int
    connections: int
    rss: int | None
    growth: int | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One target with the growth it was checked against and its outcome."""

    target: Target
    status: str
    measured_mb: float | None
    connections: int | None
    rss: int | None = None

    @property
    def where(self) -> str:
        if self.target.pool_capacity is not None:
            return f"pool {self.target.pool_capacity:,}"
        if self.target.connections == 0:
            return "startup"
        return f"{self.target.connections:,} connections"


def checkpoint_counts(count: int, targets: Iterable[Target] = ()) -> list[int]:
    """Return the connection counts to settle at: 100, 1 000, 10 000, ... below `count`, then `count`.

    A target at a connection count that is not a power of ten (such as 50 000) adds its
    own checkpoint, so every target within the run is measured where it is stated.
    """
    if count < 1:
        raise ValueError(f"The connection count must be at least 1, not {count}.")
    counts = {count}
    step = FIRST_CHECKPOINT
    while step < count:
        counts.add(step)
        step *= 10
    for target in targets:
        if target.connections is not None and 0 < target.connections <= count:
            counts.add(target.connections)
    return sorted(counts)


def scale_targets(targets: Iterable[Target], factor: float) -> tuple[Target, ...]:
    """Return `targets` with max_mb and min_mb multiplied by `factor`."""
    scaled = []
    for target in targets:
        min_mb = target.min_mb * factor if target.min_mb is not None else None
        scaled.append(replace(target, max_mb=target.max_mb * factor, min_mb=min_mb))
    return tuple(scaled)


def _judge(target: Target, growth: int | None, connections: int | None, rss: int | None) -> TargetResult:
    if growth is None:
        return TargetResult(target, NOT_MEASURED, None, connections, rss)
    measured = growth / MB
    status = PASSED if measured <= target.max_mb else FAILED
    return TargetResult(target, status, measured, connections, rss)


def check_target(
    target: Target,
    count: int,
    startup_growth: int | None,
    checkpoints: Sequence[Checkpoint],
    pool_events: Sequence[PoolEvent],
    startup_capacity: int | None = None,
    startup_rss: int | None = None,
) -> TargetResult:
    """Check one target against the run's measurements.

    Step 1: a target at 0 connections is the startup cost, startup RSS minus baseline.
    Step 2: a connection target beyond `count`, or at a checkpoint that did not fill up,
    is not reached and does not fail the run.
    Step 3: a pool-capacity target is checked at the first moment the pool reached that
    capacity, which may be startup when the pool is preheated that large.
    """
    if target.connections == 0:
        return _judge(target, startup_growth, 0, startup_rss)

    if target.connections is not None:
        if target.connections > count:
            return TargetResult(target, NOT_REACHED, None, None)
        for checkpoint in checkpoints:
            if checkpoint.target == target.connections:
                if checkpoint.connections < checkpoint.target:
                    return TargetResult(target, NOT_REACHED, None, checkpoint.connections)
                return _judge(target, checkpoint.growth, checkpoint.connections, checkpoint.rss)
        return TargetResult(target, NOT_REACHED, None, None)

    if target.pool_capacity is not None:
        if startup_capacity is not None and startup_capacity >= target.pool_capacity:
            return _judge(target, startup_growth, 0, startup_rss)
        for event in pool_events:
            if event.capacity >= target.pool_capacity:
                return _judge(target, event.growth, event.connections, event.rss)
        return TargetResult(target, NOT_REACHED, None, None)

    raise ValueError(f"The target {target.label!r} names neither connections nor pool_capacity; give one of them.")


def check_targets(
    targets: Iterable[Target],
    count: int,
    startup_growth: int | None,
    checkpoints: Sequence[Checkpoint],
    pool_events: Sequence[PoolEvent],
    startup_capacity: int | None = None,
    startup_rss: int | None = None,
) -> list[TargetResult]:
    """Check every target; see check_target."""
    return [
        check_target(target, count, startup_growth, checkpoints, pool_events, startup_capacity, startup_rss)
        for target in targets
    ]


def all_met(results: Iterable[TargetResult]) -> bool:
    """Return True when no target failed; targets not reached or not measured do not count."""
    return all(result.status != FAILED for result in results)
