"""Broker settings: names, defaults, validation and reading them from TOML.

This module re-exports the public names of `broker.settings` (key names, defaults and
SettingsError), `broker.pool_rules`, `broker.toml_keys`, `broker.near_miss_keys` and
`broker.config_file`, so that `from broker.config import ...` keeps working.
"""

from __future__ import annotations

from broker.config_file import config_from_document, load_config
from broker.near_miss_keys import NEAR_MISS_CUTOFF, NEAR_MISS_MIN_EDIT_LENGTH, closest_key
from broker.pool_rules import PoolProblem, check_pool, pool_problems
from broker.settings import (
    ALL_POOL_KEYS,
    EXPANSION_KEYS,
    LEGACY_POOL_KEY,
    LIMIT_KEYS,
    MAX_IO_ENTRIES,
    POOL_KEYS,
    AccessRule,
    AccessSettings,
    BrokerConfig,
    LimitSettings,
    PoolSettings,
    SettingsError,
)
from broker.toml_keys import FoundKey, find_keys, iter_keys, locate_key, locate_table

__all__ = [
    "ALL_POOL_KEYS",
    "EXPANSION_KEYS",
    "LEGACY_POOL_KEY",
    "LIMIT_KEYS",
    "MAX_IO_ENTRIES",
    "NEAR_MISS_CUTOFF",
    "NEAR_MISS_MIN_EDIT_LENGTH",
    "POOL_KEYS",
    "AccessRule",
    "AccessSettings",
    "BrokerConfig",
    "FoundKey",
    "LimitSettings",
    "PoolProblem",
    "PoolSettings",
    "SettingsError",
    "check_pool",
    "closest_key",
    "config_from_document",
    "find_keys",
    "iter_keys",
    "load_config",
    "locate_key",
    "locate_table",
    "pool_problems",
]
