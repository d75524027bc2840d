"""Checks of `loadtest run` options before anything starts, and how targets read in the table."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.checkpoints import PASSED, TargetResult
from loadtest.monitor import BrokerUnreachable, SysMonitor
from loadtest.options import InvalidOptions, RunOptions, check_options
from loadtest.report import describe_stated_range, describe_target
from scenarios import Target, load


def small_options(tmp_path: Path, **changes: object) -> RunOptions:
    return dataclasses.replace(RunOptions(count=10, scenario=load("small"), out=tmp_path / "report"), **changes)


def exited_pid() -> int:
    """Return the PID of a child that has exited and been reaped, so no process has it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_check_options_accepts_defaults(tmp_path: Path) -> None:
    check_options(small_options(tmp_path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"time_limit": float("nan")}, "--time-limit is nan but must be a positive number of seconds."),
        ({"time_limit": 0.0}, "--time-limit is 0 but must be a positive number of seconds."),
        ({"rate": float("inf")}, "--rate is inf but must be a positive number of connections per second."),
        ({"connect_timeout": 0.0}, "--connect-timeout is 0 but must be a positive number of seconds."),
        ({"publish_interval": -0.5}, "--publish-interval is -0.5 but must be 0 or more seconds."),
        ({"remote_workers": -1}, "--remote-workers is -1 but must be 0 or more."),
        ({"master_bind_port": 70000}, "--master-bind-port is 70000 but must be between 0 and 65535; 0 picks a free port."),
        ({"host": "127.0.0.1", "port": 0}, "--port is 0 but must be between 1 and 65535."),
        ({"host": " "}, "--host is empty. Give the broker's address, or omit --host to start the bundled broker."),
        (
            {"broker_pid": 1},
            "--broker-pid 1 applies only with --host, because the bundled broker's PID is known. "
            "Drop --broker-pid, or add --host and --port.",
        ),
        (
            {"publish_interval": 1.0, "payload_size": 1024 * 1024},
            "--payload-size 1048576 does not fit into the bundled broker's packet size limit of 1048576 bytes. "
            "Use 1048320 bytes or fewer.",
        ),
    ],
)
def test_check_options_rejects_invalid_value(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOptions) as raised:
        check_options(small_options(tmp_path, **changes))

    assert str(raised.value) == message


def test_check_options_accepts_large_payload_without_publishing(tmp_path: Path) -> None:
    check_options(small_options(tmp_path, payload_size=10 * 1024 * 1024))


def test_check_options_rejects_exited_broker_pid(tmp_path: Path) -> None:
    pid = exited_pid()

    with pytest.raises(InvalidOptions) as raised:
        check_options(small_options(tmp_path, host="127.0.0.1", port=1883, broker_pid=pid))

    assert str(raised.value).startswith(f"--broker-pid {pid} names no running process.")


def test_check_options_respects_pool_override_of_max_connections(tmp_path: Path) -> None:
    options = small_options(tmp_path, count=200, pool_overrides={"max_connections": 100, "max_pool_size": 100})

    with pytest.raises(InvalidOptions, match="--count 200 exceeds max_connections 100 of the small preset"):
        check_options(options)


def test_check_options_creates_no_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptions):
        check_options(small_options(tmp_path, count=0))

    assert list(tmp_path.iterdir()) == []


def test_target_shows_only_checked_bound() -> None:
    ranged = TargetResult(Target("startup", 5, connections=0, min_mb=3), PASSED, 0.1, 0)
    single = TargetResult(Target("1M connections", 18_432, connections=1_000_000), PASSED, 1.0, 1_000_000)

    assert describe_target(ranged) == "≤ 5 MB"
    assert describe_stated_range(ranged) == "stated for Zig: 3–5 MB"
    assert describe_target(single) == "≤ 18,432 MB"
    assert describe_stated_range(single) == ""


def test_unreachable_broker_reason_is_a_clause() -> None:
    # A bound socket that does not listen refuses connections, and holding it keeps the port.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        monitor = SysMonitor("127.0.0.1", port)
        with pytest.raises(BrokerUnreachable) as raised:
            monitor.connect(timeout=2)

    assert raised.value.reason == f"the broker at 127.0.0.1:{port} is unreachable: connection refused"
    assert str(raised.value) == f"The broker at 127.0.0.1:{port} is unreachable: connection refused."
