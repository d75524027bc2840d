"""The bundled presets: their values, their targets and the loader."""

import pytest

import scenarios
from broker.config import PoolSettings, check_pool

EXPECTED_VALUES = {
    "default": {"initial_pool_size": 1024, "max_pool_size": 100_000, "max_connections": 1_000_000,
                "io_entries": 4095, "forward_batch_size": 5000},
    "small": {"initial_pool_size": 512, "max_pool_size": 10_000, "max_connections": 10_000},
    "medium": {"initial_pool_size": 2048, "max_pool_size": 50_000, "max_connections": 50_000},
    "large": {"initial_pool_size": 10_000, "max_pool_size": 100_000, "max_connections": 1_000_000},
}


@pytest.mark.parametrize("name", scenarios.PRESET_NAMES)
def test_preset_values(name):
    assert scenarios.load(name).values == EXPECTED_VALUES[name]


@pytest.mark.parametrize("name", scenarios.PRESET_NAMES)
def test_preset_values_are_valid(name):
    assert check_pool(scenarios.load(name).values) == []


@pytest.mark.parametrize("name", scenarios.PRESET_NAMES)
def test_preset_has_startup_target(name):
    targets = scenarios.load(name).targets
    startup = [t for t in targets if t.connections == 0]
    assert len(startup) == 1
    assert all(t.max_mb > 0 for t in targets)


def test_pool_capacity_targets_lie_on_growth_sequence():
    for preset in scenarios.load_all():
        pool = preset.apply(PoolSettings())
        capacities = [pool.initial_pool_size]
        while capacities[-1] < pool.max_pool_size:
            capacities.append(pool.next_capacity(capacities[-1]))
        for target in preset.targets:
            if target.pool_capacity is not None:
                assert target.pool_capacity in capacities, (preset.name, target.label)


def test_apply_keeps_unnamed_keys():
    base = PoolSettings(io_entries=100, forward_batch_size=7)
    applied = scenarios.load("small").apply(base)
    assert applied.max_pool_size == 10_000
    assert applied.io_entries == 100
    assert applied.forward_batch_size == 7


def test_unknown_preset_names_choices():
    with pytest.raises(scenarios.UnknownScenarioError, match="default, small, medium, large"):
        scenarios.load("huge")


def test_split_into_pool_and_limit_values():
    preset = scenarios.load("default")
    assert preset.pool_values == {"initial_pool_size": 1024, "max_pool_size": 100_000}
    assert preset.limit_values == {"max_connections": 1_000_000, "io_entries": 4095, "forward_batch_size": 5000}
