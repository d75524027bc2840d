"""The settings of one `loadtest run`, and their checks before anything starts.

This module does not import locust, so the CLI can reject invalid options without
loading locust and its gevent patches.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address
from pathlib import Path

import psutil

from broker.config import LimitSettings, PoolSettings
from loadtest.limits import RESERVED_DESCRIPTORS, check_capacity, ephemeral_port_count, raise_open_file_limit
from scenarios import Scenario

# Highest TCP port number.
MAX_PORT = 65535

# Bytes of a PUBLISH packet besides its payload: fixed header (up to 5), topic length (2),
# the topic `loadtest/loadtest-<worker tag>-<n>` (under 64) and packet id (2), rounded up.
PUBLISH_OVERHEAD = 256


class InvalidOptions(ValueError):
    """An option, or a combination of options, that cannot work. The message names the value and the fix."""


@dataclass(frozen=True)
class RunOptions:
    """Everything `loadtest run` was asked to do."""

    count: int
    scenario: Scenario
    out: Path
    host: str | None = None
    port: int = 1883
    broker_pid: int | None = None
    rate: float = 500.0
    hold: float = 5.0
    publish_interval: float = 0.0
    qos: int = 0
    payload_size: int = 16
    workers: int = 1
    remote_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int = 0
    source_addresses: tuple[str, ...] = ()
    time_limit: float | None = None
    connect_timeout: float = 10.0
    pool_overrides: dict[str, int] = field(default_factory=dict)

    @property
    def bundled(self) -> bool:
        return self.host is None


def check_options(options: RunOptions) -> None:
    """Raise InvalidOptions for the first setting that cannot work.

    Step 1: each value on its own. Step 2: the broker the run would drive. Step 3: the
    open-file and local-port limits of this machine against --count.
    """
    _check_values(options)
    _check_broker(options)
    _check_source_addresses(options.source_addresses)
    _check_system_limits(options)


def _check_values(options: RunOptions) -> None:
    if options.count < 1:
        raise InvalidOptions(f"--count is {options.count} but must be at least 1.")
    if not (math.isfinite(options.rate) and options.rate > 0):
        raise InvalidOptions(f"--rate is {options.rate:g} but must be a positive number of connections per second.")
    for name, value in (("--hold", options.hold), ("--publish-interval", options.publish_interval)):
        if not (math.isfinite(value) and value >= 0):
            raise InvalidOptions(f"{name} is {value:g} but must be 0 or more seconds.")
    if not (math.isfinite(options.connect_timeout) and options.connect_timeout > 0):
        raise InvalidOptions(f"--connect-timeout is {options.connect_timeout:g} but must be a positive number of seconds.")
    if options.time_limit is not None and not (math.isfinite(options.time_limit) and options.time_limit > 0):
        raise InvalidOptions(f"--time-limit is {options.time_limit:g} but must be a positive number of seconds.")
    if options.qos not in (0, 1, 2):
        raise InvalidOptions(f"--qos is {options.qos} but must be 0, 1 or 2.")
    if options.payload_size < 0:
        raise InvalidOptions(f"--payload-size is {options.payload_size} but must be 0 or more bytes.")
    if options.workers < 0:
        raise InvalidOptions(f"--workers is {options.workers} but must be 0 or more.")
    if options.remote_workers < 0:
        raise InvalidOptions(f"--remote-workers is {options.remote_workers} but must be 0 or more.")
    if options.workers + options.remote_workers < 1:
        raise InvalidOptions("--workers and --remote-workers are both 0, so no worker would open connections. Set --workers 1 or more, or --remote-workers.")
    if not 0 <= options.master_bind_port <= MAX_PORT:
        raise InvalidOptions(f"--master-bind-port is {options.master_bind_port} but must be between 0 and {MAX_PORT}; 0 picks a free port.")


def _check_broker(options: RunOptions) -> None:
    if not options.bundled:
        if not options.host.strip():
            raise InvalidOptions("--host is empty. Give the broker's address, or omit --host to start the bundled broker.")
        if not 1 <= options.port <= MAX_PORT:
            raise InvalidOptions(f"--port is {options.port} but must be between 1 and {MAX_PORT}.")
        if options.broker_pid is not None and not psutil.pid_exists(options.broker_pid):
            raise InvalidOptions(
                f"--broker-pid {options.broker_pid} names no running process. Give the PID of the broker at "
                f"{options.host}:{options.port}, for example from `pidof mosquitto`."
            )
        return

    if options.broker_pid is not None:
        raise InvalidOptions(
            f"--broker-pid {options.broker_pid} applies only with --host, because the bundled broker's PID is known. "
            "Drop --broker-pid, or add --host and --port."
        )
    pool_values = {**options.scenario.values, **options.pool_overrides}
    max_connections = pool_values.get("max_connections", PoolSettings().max_connections)
    if options.count > max_connections:
        raise InvalidOptions(
            f"--count {options.count} exceeds max_connections {max_connections} of the {options.scenario.name} preset, "
            "so the broker would reject the rest. Lower --count or choose a larger --scenario."
        )
    max_payload = LimitSettings().max_packet_size - PUBLISH_OVERHEAD
    if options.publish_interval > 0 and options.payload_size > max_payload:
        raise InvalidOptions(
            f"--payload-size {options.payload_size} does not fit into the bundled broker's packet size limit "
            f"of {LimitSettings().max_packet_size} bytes. Use {max_payload} bytes or fewer."
        )


def _check_source_addresses(addresses: tuple[str, ...]) -> None:
    for address in addresses:
        try:
            IPv4Address(address)
        except AddressValueError:
            raise InvalidOptions(f"--source-addresses contains {address!r}, which is not an IPv4 address such as 127.0.0.2.") from None
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError as error:
                raise InvalidOptions(
                    f"--source-addresses contains {address}, which this machine cannot connect from ({error.strerror}). "
                    "Use an address of a local interface, such as any 127.x.y.z address on Linux."
                ) from None


def _check_system_limits(options: RunOptions) -> None:
    nofile = raise_open_file_limit()
    addresses = max(len(options.source_addresses), 1)
    local_share = round(options.count * options.workers / (options.workers + options.remote_workers))
    if options.workers:
        problem = check_capacity(local_share, options.workers, addresses, nofile, ephemeral_port_count())
        if problem:
            raise InvalidOptions(problem)
    if options.bundled and options.count + RESERVED_DESCRIPTORS > nofile:
        raise InvalidOptions(
            f"The open-file limit is too low for the broker: {options.count} connections need about "
            f"{options.count + RESERVED_DESCRIPTORS} files but the limit is {nofile}. "
            f"Raise it with `ulimit -n {options.count + RESERVED_DESCRIPTORS}` before running loadtest."
        )
