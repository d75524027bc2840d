"""Checkpoint selection, target checking and the limits checked before a run."""

from __future__ import annotations

import pytest

from loadtest.checkpoints import (
    FAILED,
    MB,
    NOT_MEASURED,
    NOT_REACHED,
    PASSED,
    Checkpoint,
    PoolEvent,
    all_met,
    check_target,
    checkpoint_counts,
    scale_targets,
)
from broker.rss import format_megabytes
from loadtest.limits import RESERVED_DESCRIPTORS, check_capacity
from loadtest.report import megabytes, percentile
from scenarios import Target, load


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [1]),
        (100, [100]),
        (200, [100, 200]),
        (1_000, [100, 1_000]),
        (2_500, [100, 1_000, 2_500]),
        (10_000, [100, 1_000, 10_000]),
        (123_456, [100, 1_000, 10_000, 100_000, 123_456]),
    ],
)
def test_checkpoints_are_powers_of_ten_then_count(count: int, expected: list[int]) -> None:
    assert checkpoint_counts(count) == expected


def test_checkpoints_include_target_counts_within_run() -> None:
    targets = [Target("50K", 750, connections=50_000), Target("beyond", 1, connections=200_000), Target("startup", 6, connections=0)]

    assert checkpoint_counts(60_000, targets) == [100, 1_000, 10_000, 50_000, 60_000]


def test_checkpoints_reject_zero_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        checkpoint_counts(0)


def _checkpoint(target: int, connections: int, growth_mb: float | None) -> Checkpoint:
    growth = None if growth_mb is None else int(growth_mb * MB)
    rss = None if growth is None else 30 * MB + growth
    return Checkpoint(target, connections, rss, growth, None, 1.0)


def test_startup_target_uses_startup_growth() -> None:
    target = Target("startup", 1.5, connections=0)

    assert check_target(target, 100, int(1.0 * MB), [], []).status == PASSED
    assert check_target(target, 100, int(2.0 * MB), [], []).status == FAILED
    assert check_target(target, 100, None, [], []).status == NOT_MEASURED


@pytest.mark.parametrize("size", [0, 999_999, 28_800_000, 30_300_000, 1_500_000_000])
def test_report_megabytes_match_broker_log(size: int) -> None:
    # The report groups thousands with commas; the log does not.
    assert megabytes(size).replace(",", "") == format_megabytes(size)


def test_megabyte_is_si_unit() -> None:
    assert MB == 1_000_000
    assert megabytes(28_800_000) == "28.8 MB"


def test_target_compares_si_megabytes() -> None:
    # 1.52 MB is 1.45 MiB, so a check in MiB would pass this 1.5 MB target.
    target = Target("startup", 1.5, connections=0)

    assert check_target(target, 100, 1_520_000, [], []).status == FAILED
    assert check_target(target, 100, 1_500_000, [], []).status == PASSED


def test_connection_target_is_checked_at_its_checkpoint() -> None:
    target = Target("1K", 20, connections=1_000)
    checkpoints = [_checkpoint(100, 100, 1), _checkpoint(1_000, 1_000, 19.5)]

    result = check_target(target, 1_000, 0, checkpoints, [])

    assert result.status == PASSED
    assert result.measured_mb == pytest.approx(19.5)
    assert result.connections == 1_000


def test_connection_target_over_limit_fails() -> None:
    target = Target("1K", 20, connections=1_000)

    result = check_target(target, 1_000, 0, [_checkpoint(1_000, 1_000, 20.5)], [])

    assert result.status == FAILED


def test_connection_target_beyond_count_is_not_reached() -> None:
    target = Target("10K", 150, connections=10_000)

    result = check_target(target, 1_000, 0, [_checkpoint(1_000, 1_000, 500)], [])

    assert result.status == NOT_REACHED
    assert result.measured_mb is None


def test_connection_target_at_unfilled_checkpoint_is_not_reached() -> None:
    target = Target("1K", 20, connections=1_000)

    result = check_target(target, 1_000, 0, [_checkpoint(1_000, 998, 5)], [])

    assert result.status == NOT_REACHED
    assert result.connections == 998


def test_connection_target_without_memory_is_not_measured() -> None:
    target = Target("1K", 20, connections=1_000)

    result = check_target(target, 1_000, None, [_checkpoint(1_000, 1_000, None)], [])

    assert result.status == NOT_MEASURED


def test_pool_target_uses_first_event_at_capacity() -> None:
    target = Target("pool 3 072", 9, pool_capacity=3_072)
    events = [
        PoolEvent(2_048 * 3 // 2, 1_700, 40 * MB, int(8 * MB), 1.0),
        PoolEvent(4_608, 2_500, 45 * MB, int(12 * MB), 2.0),
    ]

    result = check_target(target, 5_000, 0, [], events)

    assert result.status == PASSED
    assert result.measured_mb == pytest.approx(8)
    assert result.connections == 1_700


def test_pool_target_never_reached() -> None:
    target = Target("full pool", 30, pool_capacity=10_000)

    result = check_target(target, 200, 0, [], [PoolEvent(768, 410, None, None, 1.0)])

    assert result.status == NOT_REACHED


def test_pool_target_met_by_preheated_startup() -> None:
    target = Target("pool 512", 2, pool_capacity=512)

    result = check_target(target, 100, int(1 * MB), [], [], startup_capacity=1_024)

    assert result.status == PASSED
    assert result.connections == 0


def test_target_without_a_point_is_rejected() -> None:
    with pytest.raises(ValueError, match="neither connections nor pool_capacity"):
        check_target(Target("nowhere", 1), 100, 0, [], [])


def test_all_met_ignores_targets_not_reached() -> None:
    passed = check_target(Target("startup", 5, connections=0), 10, 0, [], [])
    unreached = check_target(Target("1M", 1, connections=1_000_000), 10, 0, [], [])
    failed = check_target(Target("startup", 0.5, connections=0), 10, MB, [], [])

    assert all_met([passed, unreached])
    assert not all_met([passed, unreached, failed])


def test_scale_targets_scales_both_bounds() -> None:
    scaled = scale_targets(load("medium").targets, 0.5)
    by_label = {t.label: t for t in scaled}

    assert by_label["startup"].max_mb == 3
    assert by_label["50K connections"].min_mb == 250
    assert by_label["50K connections"].max_mb == 375


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.001, 1)],
)
def test_percentile_uses_nearest_rank(fraction: float, expected: float) -> None:
    assert percentile(list(range(100, 0, -1)), fraction) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.5) is None


def test_capacity_check_accepts_what_fits() -> None:
    assert check_capacity(10_000, 2, 1, 20_000, 28_232) is None


def test_capacity_check_names_ulimit_and_workers() -> None:
    problem = check_capacity(30_000, 1, 2, 20_000, 28_232)

    assert problem is not None
    assert f"ulimit -n {30_000 + RESERVED_DESCRIPTORS}" in problem
    assert "--workers 2" in problem


def test_capacity_check_names_source_addresses() -> None:
    problem = check_capacity(60_000, 4, 2, 20_000, 28_232)

    assert problem is not None
    assert "--source-addresses" in problem
    assert "127.0.0.2,127.0.0.3,127.0.0.4" in problem
