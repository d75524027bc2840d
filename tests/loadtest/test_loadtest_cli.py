"""`loadtest run` and `loadtest compare` end to end, in a subprocess, against the bundled broker."""

from __future__ import annotations

import csv
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from broker.config import PoolSettings
from loadtest.brokerproc import BrokerStartError, BundledBroker, write_config

LOADTEST = [sys.executable, "-m", "loadtest"]

# Settings that keep a run short: a small ramp, a one-second hold, one worker.
QUICK = ["--scenario", "small", "--rate", "400", "--hold", "1", "--workers", "1"]


def run_loadtest(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOADTEST, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def expected_capacity(settings: PoolSettings, live: int) -> tuple[int, int]:
    """Return the pool capacity and expansion count after `live` accepts, by the growth rule."""
    capacity, expansions = settings.initial_pool_size, 0
    for current in range(live):
        threshold = -(-settings.expansion_threshold_percent * capacity // 100)
        if current >= threshold and capacity < settings.max_pool_size:
            capacity = settings.next_capacity(capacity)
            expansions += 1
    return capacity, expansions


def test_run_reaches_every_connection(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run_loadtest(
        "run", "--count", "200", *QUICK, "--pool-override", "initial_pool_size=64",
        "--publish-interval", "0.5", "--qos", "1", "--out", str(out), "--json",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads((out / "report.json").read_text())
    assert report["outcome"] == "passed"
    assert report["connections"]["max_connected"] == 200
    assert report["connections"]["disconnected_all"] is True
    assert [(c["target"], c["connections"]) for c in report["checkpoints"]] == [(100, 100), (200, 200)]
    # The broker's own $SYS count agrees, plus one for the load tester's monitor client.
    assert [c["broker_connected"] for c in report["checkpoints"]] == [101, 201]
    assert report["latency_ms"]["count"] == 200
    assert report["failures"] == {}
    # Each client publishes to its own topic and receives its own messages back.
    assert report["messages"]["published"] >= 200
    assert report["messages"]["received"] >= 200

    # RSS rises with the connection count.
    assert report["checkpoints"][-1]["rss"] > report["startup_rss"]
    assert report["checkpoints"][-1]["growth"] > 0

    # The pool capacity in the report is the broker's, for 200 clients plus the $SYS monitor.
    settings = PoolSettings(initial_pool_size=64, max_pool_size=10_000, max_connections=10_001)
    capacity, expansions = expected_capacity(settings, 201)
    assert report["pool"]["capacity"] == capacity
    assert report["pool"]["expansions"] == expansions
    grown = re.findall(r"Pool grew from \d+ to (\d+) slots", (out / "broker.log").read_text())
    assert int(grown[-1]) == capacity

    with (out / "samples.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    assert max(int(row["connections"]) for row in rows) == 200
    assert (out / "memory.png").read_bytes().startswith(b"\x89PNG")


def table_row(output: str, first_cell: str) -> list[str]:
    """Return the cells of the table row in `output` whose first cell is `first_cell`."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"No table row starts with {first_cell!r} in:\n{output}")


def test_run_with_impossible_target_exits_1(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(
        '[[targets]]\nlabel = "startup"\nconnections = 0\nmax_mb = 5\nmin_mb = 3\n\n'
        '[[targets]]\nlabel = "nothing at 100"\nconnections = 100\nmax_mb = 0\n'
    )
    out = tmp_path / "report"

    result = run_loadtest("run", "--count", "100", *QUICK, "--targets-file", str(targets), "--out", str(out))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Memory target(s) missed: nothing at 100." in result.stdout.splitlines()
    report = json.loads((out / "report.json").read_text())
    assert report["outcome"] == "target missed"
    assert [t["status"] for t in report["targets"]] == ["pass", "fail"]

    # The target column shows the bound that is checked, and the stated range sits apart.
    startup = table_row(result.stdout, "startup")
    assert startup[5:] == ["≤ 5 MB", "pass", "stated for Zig: 3–5 MB"]
    assert table_row(result.stdout, "100")[5:] == ["≤ 0 MB", "fail", ""]


def unreachable_message(port: int) -> str:
    return (
        f"The run could not complete because the broker at 127.0.0.1:{port} is unreachable: connection refused. "
        "Check --host and --port, or omit --host to start the bundled broker."
    )


def test_run_against_unreachable_broker_exits_2(tmp_path: Path) -> None:
    port = free_port()

    result = run_loadtest("run", "--count", "10", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--out", str(tmp_path))

    assert result.returncode == 2, result.stdout + result.stderr
    # One unwrapped sentence, whatever the width of the output.
    assert unreachable_message(port) in result.stdout.splitlines()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outcome"] == "incomplete"
    assert report["reason"] == unreachable_message(port)


def test_run_json_prints_unreachable_broker_on_stderr(tmp_path: Path) -> None:
    port = free_port()

    result = run_loadtest(
        "run", "--count", "10", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--out", str(tmp_path), "--json"
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"] == "incomplete"
    assert unreachable_message(port) in result.stderr.splitlines()


def test_run_stops_at_time_limit(tmp_path: Path) -> None:
    result = run_loadtest(
        "run", "--count", "3000", "--scenario", "small", "--rate", "100", "--workers", "1",
        "--time-limit", "3", "--out", str(tmp_path),
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "time limit of 3 s" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["connections"]["max_connected"] < 3000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count is 0 but must be at least 1."),
        (["--count", "-5"], "--count is -5 but must be at least 1."),
        (["--count", "10", "--qos", "3"], "--qos is 3 but must be 0, 1 or 2."),
        (["--count", "10", "--scenario", "huge"], "There is no preset named 'huge'; choose one of default, small, medium, large."),
        (
            ["--count", "10001", "--scenario", "small"],
            "--count 10001 exceeds max_connections 10000 of the small preset, so the broker would reject the rest. "
            "Lower --count or choose a larger --scenario.",
        ),
        (["--count", "10", "--rate", "0"], "--rate is 0 but must be a positive number of connections per second."),
        (["--count", "10", "--hold", "-1"], "--hold is -1 but must be 0 or more seconds."),
        (["--count", "10", "--payload-size", "-1"], "--payload-size is -1 but must be 0 or more bytes."),
        (
            ["--count", "10", "--workers", "0"],
            "--workers and --remote-workers are both 0, so no worker would open connections. "
            "Set --workers 1 or more, or --remote-workers.",
        ),
        (
            ["--count", "10", "--port", "1884"],
            "--port 1884 applies only with --host, because the bundled broker listens on a free port. "
            "Drop --port, or add --host to drive another broker.",
        ),
        (
            ["--count", "10", "--source-addresses", "127.0.0.2,localhost"],
            "--source-addresses contains 'localhost', which is not an IPv4 address such as 127.0.0.2.",
        ),
    ],
)
def test_run_rejects_invalid_option_before_start(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "report"

    result = run_loadtest("run", *args, "--out", str(out))

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"Error: {message}"]
    assert result.stdout == ""
    assert not out.exists()


def test_run_rejects_out_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.write_text("kept\n")

    result = run_loadtest("run", "--count", "10", "--out", str(out))

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"Error: --out {out} is a file, but the report needs a folder. Give a folder path."]
    assert out.read_text() == "kept\n"


def _read_lines(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*LOADTEST, "run", "--count", "3000", "--scenario", "small", "--rate", "100", "--hold", "30",
         "--workers", "2", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stderr, lines), daemon=True).start()
    try:
        seen = []
        while not any(line.startswith("Ramping to") for line in seen):
            seen.append(lines.get(timeout=30))
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "-m broker" in names
        assert names.count("-m loadtest.worker") == 2

        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 2
    assert "interrupted" in stdout
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []


def test_run_against_external_broker_without_pid(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"initial_pool_size": 16, "max_pool_size": 1000, "max_connections": 1000})
    with BundledBroker(config, tmp_path) as broker:
        out = tmp_path / "report"
        result = run_loadtest(
            "run", "--count", "100", "--host", "127.0.0.1", "--port", str(broker.ready.port), *QUICK, "--out", str(out)
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass --broker-pid" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["memory_sampled"] is False
    assert report["connections"]["max_connected"] == 100
    assert {t["status"] for t in report["targets"]} <= {"not measured", "not reached"}
    assert not (out / "memory.png").exists()


def test_run_against_external_broker_with_pid(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"initial_pool_size": 16, "max_pool_size": 1000, "max_connections": 1000})
    with BundledBroker(config, tmp_path) as broker:
        out = tmp_path / "report"
        result = run_loadtest(
            "run", "--count", "100", "--host", "127.0.0.1", "--port", str(broker.ready.port),
            "--broker-pid", str(broker.pid), "--source-addresses", "127.0.0.2,127.0.0.3", *QUICK, "--out", str(out),
        )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["memory_sampled"] is True
    assert report["checkpoints"][0]["rss"] > 0
    by_label = {t["label"]: t["status"] for t in report["targets"]}
    assert by_label["startup"] == "not measured"
    assert by_label["100 connections"] == "pass"


def test_failed_broker_start_shows_broker_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"initial_pool_size": 20, "max_pool_size": 10, "max_connections": 100})
    broker = BundledBroker(config, tmp_path)

    with pytest.raises(BrokerStartError) as raised:
        broker.start()

    assert raised.value.reason == f"the bundled broker exited with code 2 before it was ready (config {config})"
    # The broker's own error, which names the setting, follows the reason.
    assert "initial_pool_size is 20" in raised.value.output.lower()
    assert str(raised.value) == f"The bundled broker exited with code 2 before it was ready (config {config}). Its output:\n{raised.value.output}"


def test_compare_reports_both_modes(tmp_path: Path) -> None:
    result = run_loadtest("compare", "--legacy-pool", "2000", "--scenario", "small", "--runs", "1", "--out", str(tmp_path), "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["legacy"]["pool_capacity"] == 2000
    assert report["preset"]["pool_capacity"] == 512
    assert report["legacy"]["startup_seconds"] > 0
    assert report["preset"]["startup_rss"] > 0
    assert report["saving"]["startup_rss"]["absolute"] == report["legacy"]["startup_rss"] - report["preset"]["startup_rss"]
    with (tmp_path / "samples.csv").open(newline="") as handle:
        assert [row["mode"] for row in csv.DictReader(handle)] == ["legacy", "small"]
    assert (tmp_path / "memory.png").read_bytes().startswith(b"\x89PNG")


def test_compare_table_shows_saving(tmp_path: Path) -> None:
    result = run_loadtest("compare", "--legacy-pool", "2000", "--scenario", "small", "--runs", "1", "--out", str(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "max_clients_pool = 2,000" in result.stdout
    assert "initial_pool_size = 512" in result.stdout
    assert "RSS after startup" in result.stdout
    assert "saving" in result.stdout
