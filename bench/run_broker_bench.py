"""Run every scenario against every broker several times and print a table of medians.

    python -m bench.run_broker_bench --runs 3 --json results.json --markdown results.md

Each run starts a fresh broker on a free port of 127.0.0.1, runs one scenario for a fixed
time with a hard timeout, and stops the broker by PID. Runs are interleaved (run 1 of
every scenario on every broker, then run 2, ...) so that drift of the machine spreads
over all brokers alike.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import brokers, loadgen, report

BROKERS = ("mosquitto", "amqtt", "bundled", "bundled-uvloop")
BUNDLED = ("bundled", "bundled-uvloop")
SCENARIOS = ("idle", "fanin", "fanout", "qos1", "startup")

# Pool sizes of the default config and of the legacy config measured beside it.
DEFAULT_SLOTS = 1024
LEGACY_SLOTS = 100_000

# Configs of the bundled broker. The 1-slot pool is the reference that the startup
# scenario subtracts to isolate what preheating costs.
BENCH_CONFIG = "# Bundled broker as an operator runs it, on a port the OS picks.\nport = 0\n"
STARTUP_CONFIGS = {
    "startup-1": "port = 0\ninitial_pool_size = 1\n",
    "startup-default": "port = 0\n",
    "startup-legacy": f"port = 0\nmax_clients_pool = {LEGACY_SLOTS}\n",
}

# Seconds one scenario may take beyond its own duration and drain time before it is
# abandoned: room for connecting clients and for a slow broker's handshakes.
SCENARIO_SLACK = 120.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_broker_bench",
        description="Benchmark the bundled broker beside mosquitto and amqtt on 127.0.0.1.",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario on each broker (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds each message-flow scenario sends (default 5)")
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections opened (default 10000)")
    parser.add_argument("--window", type=int, default=100, help="QoS 1 messages in flight (default 100)")
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS), help="brokers to run")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios to run")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the bundled broker without uvloop (default: this one)",
    )
    parser.add_argument(
        "--uvloop-python",
        default=sys.executable,
        help="interpreter, with uvloop installed, that runs the bundled broker with uvloop (default: this one)",
    )
    parser.add_argument(
        "--loadgen-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of the load generator; auto uses uvloop when it is installed",
    )
    parser.add_argument("--json", type=Path, help="write every run and the medians to this JSON file")
    parser.add_argument("--markdown", type=Path, help="write the table of medians to this markdown file")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS.json",
        help="print the table of a saved --json file instead of running anything",
    )
    args = parser.parse_args(argv)

    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}.")
    if args.duration <= 0:
        parser.error(f"--duration must be positive, got {args.duration}.")
    if args.connections < 1:
        parser.error(f"--connections must be at least 1, got {args.connections}.")
    if not 1 <= args.window <= 65_535:
        parser.error(f"--window must be within 1..65535, got {args.window}.")
    return args


def new_loop(choice: str) -> asyncio.AbstractEventLoop:
    """Create the load generator's event loop."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SystemExit("--loadgen-loop uvloop needs uvloop: pip install uvloop") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def start_broker(name: str, workdir: Path, args: argparse.Namespace, config: str = BENCH_CONFIG) -> brokers.RunningBroker:
    """Start broker `name` and check that the bundled ones run the event loop they are named for."""
    if name == "mosquitto":
        return brokers.start_mosquitto(workdir)
    if name == "amqtt":
        return brokers.start_amqtt(workdir)

    with_uvloop = name == "bundled-uvloop"
    python = args.uvloop_python if with_uvloop else args.python
    broker = brokers.start_bundled(workdir, config, name=name, python=python, uvloop=with_uvloop)
    if broker.uses_uvloop() != with_uvloop:
        broker.stop()
        if with_uvloop:
            raise brokers.BrokerStartError(
                f"{name} runs without uvloop under {python}; install uvloop there or pass "
                "--uvloop-python with an interpreter that has it."
            )
        raise brokers.BrokerStartError(
            f"{name} loaded uvloop under {python} although {brokers.NO_UVLOOP_VARIABLE}=1 was set; "
            "pass --python with an interpreter that has no uvloop installed."
        )
    return broker


def flow_values(result: loadgen.FlowResult) -> dict[str, Any]:
    return {
        "sent": result.sent,
        "expected": result.expected,
        "received_in_window": result.received_in_window,
        "received": result.received,
        "acknowledged": result.acknowledged,
        "send_seconds": result.send_seconds,
        "seconds": result.seconds,
        "ack_seconds": result.ack_seconds,
        "rate": result.rate,
        "ack_rate": result.ack_rate if result.qos else None,
        "delivered_fraction": result.delivered_fraction,
    }


def idle_values(result: loadgen.IdleResult) -> dict[str, Any]:
    return {
        "connections": result.connections,
        "rss_before": result.rss_before,
        "rss_after": result.rss_after,
        "bytes_per_connection": result.bytes_per_connection,
        "connect_seconds": result.connect_seconds,
    }


def busy_cpu_seconds() -> float:
    """Return the CPU seconds that all processes of the machine have used since boot."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


def run_scenario(
    loop: asyncio.AbstractEventLoop, broker_name: str, scenario: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Start a fresh broker, run one scenario against it and return the recorded values."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{broker_name}-") as folder:
        workdir = Path(folder)
        with start_broker(broker_name, workdir, args) as broker:
            target = loadgen.Target(broker.host, broker.port)
            work: Callable[[], Any]
            if scenario == "idle":
                work = lambda: loadgen.idle_connections(target, broker.pid, args.connections)  # noqa: E731
            elif scenario == "fanin":
                work = lambda: loadgen.qos0_flow(target, "fanin", 10, 1, args.duration)  # noqa: E731
            elif scenario == "fanout":
                work = lambda: loadgen.qos0_flow(target, "fanout", 1, 100, args.duration)  # noqa: E731
            else:
                work = lambda: loadgen.qos1_flow(target, args.window, args.duration)  # noqa: E731

            process = psutil.Process(broker.pid)
            broker_cpu = sum(process.cpu_times()[:2])
            loadgen_cpu = time.process_time()
            machine_cpu = busy_cpu_seconds()
            started = time.perf_counter()
            timeout = args.duration + loadgen.DRAIN_TIMEOUT + SCENARIO_SLACK
            result = loop.run_until_complete(asyncio.wait_for(work(), timeout))

            # CPU of other processes shows whether something else competed for the cores.
            cpu = {
                "elapsed_seconds": time.perf_counter() - started,
                "broker_cpu_seconds": sum(process.cpu_times()[:2]) - broker_cpu,
                "loadgen_cpu_seconds": time.process_time() - loadgen_cpu,
            }
            cpu["other_cpu_seconds"] = (
                busy_cpu_seconds() - machine_cpu - cpu["broker_cpu_seconds"] - cpu["loadgen_cpu_seconds"]
            )
            cpu["other_cores"] = max(cpu["other_cpu_seconds"], 0.0) / cpu["elapsed_seconds"]

    values = idle_values(result) if scenario == "idle" else flow_values(result)
    return values | cpu


def run_startup(broker_name: str, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the bundled broker with one of STARTUP_CONFIGS and return its ready-file figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{broker_name}-") as folder:
        with start_broker(broker_name, Path(folder), args, STARTUP_CONFIGS[scenario]) as broker:
            ready = broker.ready
    return {
        "baseline_rss": ready["baseline_rss"],
        "startup_rss": ready["startup_rss"],
        "startup_rss_growth": ready["startup_rss"] - ready["baseline_rss"],
        "startup_seconds": ready["startup_seconds"],
        "pool_capacity": ready["pool_capacity"],
    }


def record(runs: list[dict[str, Any]], broker: str, scenario: str, number: int, measure: Callable[[], dict[str, Any]]) -> None:
    """Run `measure`, append its values or its error to `runs` and print one progress line."""
    entry: dict[str, Any] = {"broker": broker, "scenario": scenario, "run": number}
    try:
        entry["values"] = measure()
    except (brokers.BrokerStartError, loadgen.LoadError, OSError, TimeoutError) as error:
        entry["error"] = f"{type(error).__name__}: {error}"
        print(f"{broker} {scenario} run {number} failed: {entry['error']}", file=sys.stderr, flush=True)
    else:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in entry["values"].items()}
        print(f"{broker} {scenario} run {number}: {rounded}", file=sys.stderr, flush=True)
    runs.append(entry)


def add_preheat_estimates(runs: list[dict[str, Any]]) -> None:
    """Add to each default-pool startup run what preheating its 1 024 slots cost, estimated.

    The ready file's startup time includes the interpreter's start, which varies by tens
    of milliseconds from run to run. So the time is scaled down from the legacy pool of
    the same run number: (legacy − 1-slot startup) × 1 023 / 99 999. The memory is the
    RSS growth above the 1-slot pool, which removes whatever the broker loads after it
    measures its baseline.
    """
    by_run = {
        (run["broker"], run["run"], run["scenario"]): run["values"]
        for run in runs
        if run["scenario"].startswith("startup-") and not run.get("error")
    }
    for (broker, number, scenario), values in by_run.items():
        if scenario != "startup-default":
            continue
        one_slot = by_run.get((broker, number, "startup-1"))
        legacy = by_run.get((broker, number, "startup-legacy"))
        if one_slot is not None:
            values["preheat_rss_estimate"] = values["startup_rss_growth"] - one_slot["startup_rss_growth"]
        if one_slot is not None and legacy is not None:
            per_slot = (legacy["startup_seconds"] - one_slot["startup_seconds"]) / (LEGACY_SLOTS - 1)
            values["preheat_seconds_estimate"] = per_slot * (DEFAULT_SLOTS - 1)


def command_output(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (completed.stdout + completed.stderr).strip()


def cpu_model() -> str:
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """Describe the machine and the software versions the figures depend on."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": command_output([str(brokers.MOSQUITTO), "-h"]).splitlines()[0],
        "amqtt": command_output(
            [str(brokers.AMQTT.with_name("python")), "-c", "import importlib.metadata as m; print(m.version('amqtt'))"]
        ),
        "uvloop_for_bundled": command_output(
            [args.uvloop_python, "-c", "import importlib.metadata as m; print(m.version('uvloop'))"]
        ),
        "open_files_limit": command_output(["sh", "-c", "ulimit -n"]),
    }


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def print_saved_report(path: Path) -> int:
    """Print the table of medians from a JSON file that an earlier run wrote."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        runs = document["runs"]
        names = list(dict.fromkeys(run["broker"] for run in runs))
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"Cannot read benchmark results from {path}: {error}. Pass a file written by --json.", file=sys.stderr)
        return 2
    print(report.markdown_table(runs, names, [name for name in names if name in BUNDLED]))
    for line in report.failures(runs):
        print(f"failed: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return print_saved_report(args.report)

    # A shell starts background jobs with SIGINT ignored, and SIGTERM would end the process
    # without stopping the broker it started. Both signals now unwind, which stops the broker.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    started = datetime.datetime.now(datetime.timezone.utc)
    loop = new_loop(args.loadgen_loop)
    loop_name = f"{type(loop).__module__}.{type(loop).__name__}"
    runs: list[dict[str, Any]] = []

    flow_scenarios = [s for s in args.scenarios if s != "startup"]
    startup_brokers = [b for b in args.brokers if b in BUNDLED] if "startup" in args.scenarios else []
    for number in range(1, args.runs + 1):
        for scenario in flow_scenarios:
            for broker in args.brokers:
                record(runs, broker, scenario, number, lambda: run_scenario(loop, broker, scenario, args))
        for scenario in STARTUP_CONFIGS:
            for broker in startup_brokers:
                record(runs, broker, scenario, number, lambda: run_startup(broker, scenario, args))
    loop.close()
    add_preheat_estimates(runs)

    table = report.markdown_table(runs, args.brokers, [b for b in args.brokers if b in BUNDLED])
    failed = report.failures(runs)
    print(table)
    for line in failed:
        print(f"failed: {line}")

    if args.json:
        document = {
            "started": started.isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, "-m", "bench.run_broker_bench", *(argv or sys.argv[1:])]),
            "machine": machine(args),
            "loadgen_loop": loop_name,
            "settings": {
                "runs": args.runs,
                "duration": args.duration,
                "connections": args.connections,
                "window": args.window,
                "payload_bytes": loadgen.PAYLOAD_SIZE,
            },
            "runs": runs,
            "medians": [
                {"broker": broker, "scenario": scenario, "values": values}
                for (broker, scenario), values in report.medians(runs).items()
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
