"""The `loadtest` command: drive MQTT clients against a broker and check its memory."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

import scenarios
from broker.config import check_pool
from loadtest.checkpoints import scale_targets
from loadtest.options import InvalidOptions, RunOptions, check_options

app = typer.Typer(
    help="Load-test an MQTT broker with locust and paho-mqtt, and check its memory against a preset's targets.",
    no_args_is_help=True,
    add_completion=False,
)

# Connections one local worker process takes by default before another worker is added.
CONNECTIONS_PER_WORKER = 5000

DEFAULT_OUT = Path("loadtest-report")

# Width of the report table when stdout is not a terminal (a file or a CI log), where rich
# would otherwise wrap at 80 columns.
REPORT_WIDTH = 110


def report_console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=REPORT_WIDTH)


def default_workers(count: int) -> int:
    """Return one worker per CONNECTIONS_PER_WORKER connections, at most one per CPU."""
    return max(1, min(os.cpu_count() or 1, math.ceil(count / CONNECTIONS_PER_WORKER)))


def _fail_usage(message: str) -> typer.Exit:
    """Print `message` as a usage error on stderr, unwrapped, and return the exit to raise."""
    Console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def print_abort(console: Console, message: str) -> None:
    """Print why a run or comparison could not complete, unwrapped so that it reads as one sentence."""
    console.print(escape(message), style="bold red", highlight=False, soft_wrap=True)


def _load_scenario(name: str) -> scenarios.Scenario:
    try:
        return scenarios.load(name)
    except scenarios.UnknownScenarioError as error:
        raise _fail_usage(str(error)) from None


def _read_targets_file(path: Path) -> tuple[scenarios.Target, ...]:
    """Read [[targets]] tables in the presets' format from `path`."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail_usage(f"The targets file {path} was not found. Check the path.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise _fail_usage(f"The targets file {path} could not be read: {error}.") from None
    targets = []
    for index, entry in enumerate(document.get("targets", [])):
        try:
            target = scenarios.Target(**entry)
        except TypeError as error:
            raise _fail_usage(f"{path}: targets[{index}] is invalid ({error}); use label, max_mb, connections or pool_capacity, min_mb.") from None
        if (target.connections is None) == (target.pool_capacity is None):
            raise _fail_usage(f"{path}: targets[{index}] ({target.label}) needs exactly one of connections and pool_capacity.")
        targets.append(target)
    if not targets:
        raise _fail_usage(f"The targets file {path} has no [[targets]] tables.")
    return tuple(targets)


def _parse_pool_overrides(items: list[str], scenario: scenarios.Scenario) -> dict[str, int]:
    overrides: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            overrides[name.strip().lower()] = int(value)
        except ValueError:
            raise _fail_usage(f"--pool-override {item!r} must look like initial_pool_size=64.") from None
    problems = check_pool({**scenario.values, **overrides})
    if problems:
        raise _fail_usage("--pool-override gives an invalid pool: " + " ".join(problems))
    return overrides


def _log_to_file(out: Path) -> Path:
    """Send every log record of this process (locust's included) to loadtest.log in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "loadtest.log"
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def _parse_addresses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@app.command()
def run(
    count: Annotated[int, typer.Option("--count", "-n", help="Connections to open.")],
    scenario: Annotated[str, typer.Option(help="Preset whose pool settings and memory targets apply: default, small, medium or large.")] = "default",
    host: Annotated[Optional[str], typer.Option(help="Broker to drive; without it the bundled broker is started with the preset.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Broker port, with --host; default 1883.")] = None,
    broker_pid: Annotated[Optional[int], typer.Option(help="PID of the broker given by --host, so its memory can be sampled.")] = None,
    rate: Annotated[float, typer.Option(help="New connections per second while ramping.")] = 500.0,
    hold: Annotated[float, typer.Option(help="Seconds to hold every connection open after the ramp.")] = 5.0,
    publish_interval: Annotated[float, typer.Option(help="Seconds between publications of each client; 0 publishes nothing.")] = 0.0,
    qos: Annotated[int, typer.Option(help="QoS of subscriptions and publications: 0, 1 or 2.")] = 0,
    payload_size: Annotated[int, typer.Option(help="Bytes per published payload.")] = 16,
    workers: Annotated[Optional[int], typer.Option(help="Local locust worker processes; default one per 5000 connections, at most one per CPU.")] = None,
    remote_workers: Annotated[int, typer.Option(help="Workers on other machines to wait for (see --master-bind-host).")] = 0,
    master_bind_host: Annotated[str, typer.Option(help="Address the locust master listens on for workers; 0.0.0.0 for remote ones.")] = "127.0.0.1",
    master_bind_port: Annotated[int, typer.Option(help="Port the locust master listens on; 0 picks a free one.")] = 0,
    source_addresses: Annotated[Optional[str], typer.Option(help="Comma-separated local addresses to connect from, such as 127.0.0.2,127.0.0.3.")] = None,
    time_limit: Annotated[Optional[float], typer.Option(help="Seconds after which the run stops by itself; default 60 + 3 x ramp time + hold.")] = None,
    connect_timeout: Annotated[float, typer.Option(help="Seconds a client waits for CONNACK.")] = 10.0,
    out: Annotated[Path, typer.Option(help="Folder for report.json, samples.csv, memory.png and logs.")] = DEFAULT_OUT,
    json_output: Annotated[bool, typer.Option("--json", help="Print report.json to stdout instead of the table.")] = False,
    target_mb_scale: Annotated[float, typer.Option(hidden=True, help="Multiply every target's max_mb; for tests.")] = 1.0,
    targets_file: Annotated[Optional[Path], typer.Option(hidden=True, help="TOML file with [[targets]] replacing the preset's.")] = None,
    pool_override: Annotated[list[str], typer.Option(hidden=True, help="KEY=VALUE pool setting for the bundled broker.")] = [],  # noqa: B006
) -> None:
    """Open COUNT MQTT connections, hold them, and check the broker's memory against the preset."""
    preset = _load_scenario(scenario)
    targets = _read_targets_file(targets_file) if targets_file is not None else preset.targets
    if not (math.isfinite(target_mb_scale) and target_mb_scale > 0):
        raise _fail_usage(f"--target-mb-scale is {target_mb_scale:g} but must be a positive number.")
    if target_mb_scale != 1.0:
        targets = scale_targets(targets, target_mb_scale)
    preset = dataclasses.replace(preset, targets=targets)
    overrides = _parse_pool_overrides(pool_override, preset)
    if host is None and port is not None:
        raise _fail_usage(
            f"--port {port} applies only with --host, because the bundled broker listens on a free port. "
            "Drop --port, or add --host to drive another broker."
        )
    if out.exists() and not out.is_dir():
        raise _fail_usage(f"--out {out} is a file, but the report needs a folder. Give a folder path.")

    options = RunOptions(
        count=count,
        scenario=preset,
        out=out,
        host=host,
        port=1883 if port is None else port,
        broker_pid=broker_pid,
        rate=rate,
        hold=hold,
        publish_interval=publish_interval,
        qos=qos,
        payload_size=payload_size,
        workers=default_workers(count) if workers is None else workers,
        remote_workers=remote_workers,
        master_bind_host=master_bind_host,
        master_bind_port=master_bind_port,
        source_addresses=_parse_addresses(source_addresses),
        time_limit=time_limit,
        connect_timeout=connect_timeout,
        pool_overrides=overrides,
    )
    try:
        check_options(options)
    except InvalidOptions as error:
        raise _fail_usage(str(error)) from None

    # Imported only now because locust patches the standard library for gevent on import.
    from loadtest import report
    from loadtest.progress import RampProgress
    from loadtest.runner import run_load_test

    _log_to_file(out)
    status_console = Console(stderr=True)
    with RampProgress(status_console) as progress:
        result = run_load_test(options, progress)

    target_results = report.evaluate(result)
    code = report.exit_code(result, target_results)
    document = report.build_report(result, target_results, code)
    report.write_files(out, result, document)
    if json_output:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        if result.aborted:
            print_abort(status_console, result.aborted)
    else:
        report.render(report_console(), result, target_results, document, out)
    raise typer.Exit(code)


@app.command()
def compare(
    legacy_pool: Annotated[int, typer.Option(help="max_clients_pool of the legacy config: slots preheated at startup.")] = 100_000,
    scenario: Annotated[str, typer.Option(help="Preset to compare with the legacy pool.")] = "default",
    runs: Annotated[int, typer.Option(help="Starts per mode; the report shows the median.")] = 3,
    out: Annotated[Path, typer.Option(help="Folder for report.json, samples.csv and memory.png.")] = DEFAULT_OUT,
    json_output: Annotated[bool, typer.Option("--json", help="Print report.json to stdout instead of the table.")] = False,
) -> None:
    """Start the bundled broker with a legacy pool and with a preset; compare startup time and memory."""
    from loadtest import compare as comparison

    preset = _load_scenario(scenario)
    if legacy_pool < 1:
        raise _fail_usage(f"--legacy-pool is {legacy_pool} but must be at least 1.")
    if runs < 1:
        raise _fail_usage(f"--runs is {runs} but must be at least 1.")

    status_console = Console(stderr=True)
    try:
        result = comparison.compare_startup(legacy_pool, preset, runs, progress=lambda text: status_console.print(text, highlight=False))
    except comparison.CompareFailed as error:
        print_abort(status_console, str(error))
        raise typer.Exit(2) from None
    document = comparison.build_report(result)
    comparison.write_files(out, result, document)
    if json_output:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        comparison.render(report_console(), result, out)


@app.command()
def worker(
    master_host: Annotated[str, typer.Option(help="Address of the machine running `loadtest run`.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Port the master listens on (--master-bind-port there).")] = 5557,
) -> None:
    """Run a locust worker for a `loadtest run` on this or another machine."""
    from loadtest.worker import run_worker

    raise typer.Exit(run_worker(master_host, master_port))
