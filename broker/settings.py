"""Broker settings: the key names, their defaults and the error for invalid values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

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
    """Invalid settings; `problems` lists each one as a full sentence.

    The message has one line per problem, each prefixed with `source` when it is given.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + problem for problem in problems))


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
    # One sentence per unknown key that looks like a misspelt setting, naming file and line.
    warnings: tuple[str, ...] = ()
