"""Turn a run's result into the terminal table, report.json, samples.csv and memory.png."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from loadtest.checkpoints import (  # noqa: E402
    FAILED,
    MB,
    NOT_MEASURED,
    NOT_REACHED,
    PASSED,
    TargetResult,
    all_met,
    check_targets,
)

if TYPE_CHECKING:
    # The runner imports locust, which patches the standard library; the report must not.
    from loadtest.runner import RunResult

# Exit codes of `loadtest run` and `loadtest compare`.
EXIT_PASSED = 0
EXIT_TARGET_MISSED = 1
EXIT_INCOMPLETE = 2

REPORT_FILE = "report.json"
SAMPLES_FILE = "samples.csv"
PLOT_FILE = "memory.png"

_STATUS_STYLE = {PASSED: "green", FAILED: "bold red", NOT_REACHED: "yellow", NOT_MEASURED: "dim"}


def megabytes(value: int | None) -> str:
    """Format a byte count in SI megabytes, as the broker's log does, or '–' for None."""
    return "–" if value is None else f"{value / MB:,.1f} MB"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of `values` (fraction 0.95 for p95), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(latencies_ms),
        "p50": percentile(latencies_ms, 0.50),
        "p95": percentile(latencies_ms, 0.95),
        "p99": percentile(latencies_ms, 0.99),
    }


def evaluate(result: RunResult) -> list[TargetResult]:
    """Check the preset's targets (as given to the run) against the result."""
    options = result.options
    return check_targets(
        options.scenario.targets,
        options.count,
        result.startup_growth,
        result.checkpoints,
        result.pool_events,
        result.startup_capacity if result.broker.get("bundled") else None,
        result.startup_rss,
    )


def exit_code(result: RunResult, targets: Sequence[TargetResult]) -> int:
    """Return 2 when the run did not complete, 1 when a target was missed, else 0."""
    if result.aborted is not None:
        return EXIT_INCOMPLETE
    return EXIT_PASSED if all_met(targets) else EXIT_TARGET_MISSED


def describe_target(result: TargetResult) -> str:
    """Return the bound the result is checked against; only max_mb is enforced."""
    return f"≤ {result.target.max_mb:,g} MB"


def describe_stated_range(result: TargetResult) -> str:
    """Return the range the source states when it gives one, such as a startup of 3–5 MB, else ""."""
    target = result.target
    if target.min_mb is None:
        return ""
    return f"stated for Zig: {target.min_mb:,g}–{target.max_mb:,g} MB"


def build_report(result: RunResult, targets: Sequence[TargetResult], code: int) -> dict[str, Any]:
    """Return the report as plain data, the content of report.json."""
    options = result.options
    return {
        "outcome": {EXIT_PASSED: "passed", EXIT_TARGET_MISSED: "target missed", EXIT_INCOMPLETE: "incomplete"}[code],
        "exit_code": code,
        "reason": result.aborted,
        "scenario": options.scenario.name,
        "count": options.count,
        "settings": {
            "rate": options.rate,
            "hold": options.hold,
            "publish_interval": options.publish_interval,
            "qos": options.qos,
            "payload_size": options.payload_size,
            "workers": options.workers,
            "remote_workers": options.remote_workers,
            "source_addresses": list(options.source_addresses),
        },
        "broker": result.broker,
        "memory_sampled": result.memory_sampled,
        "memory_note": result.memory_note,
        "baseline_rss": result.baseline_rss,
        "startup_rss": result.startup_rss,
        "checkpoints": [
            {
                "target": c.target,
                "connections": c.connections,
                "rss": c.rss,
                "growth": c.growth,
                "pool_capacity": c.pool_capacity,
                "broker_connected": c.broker_connected,
                "elapsed": round(c.elapsed, 3),
            }
            for c in result.checkpoints
        ],
        "targets": [
            {
                "label": t.target.label,
                "connections": t.target.connections,
                "pool_capacity": t.target.pool_capacity,
                "max_mb": t.target.max_mb,
                "min_mb": t.target.min_mb,
                "status": t.status,
                "measured_mb": None if t.measured_mb is None else round(t.measured_mb, 3),
                "measured_at_connections": t.connections,
            }
            for t in targets
        ],
        "pool": {
            "startup_capacity": result.startup_capacity,
            "capacity": result.pool_capacity,
            "expansions": result.pool_expansions,
            "events": [
                {"capacity": e.capacity, "connections": e.connections, "rss": e.rss, "growth": e.growth, "elapsed": round(e.elapsed, 3)}
                for e in result.pool_events
            ],
        },
        "connections": {
            "requested": options.count,
            "max_connected": result.max_connected,
            # Peak of $SYS/broker/clients/connected, which counts the monitor client too.
            "broker_reported_max": result.sys_clients_connected_max,
            "disconnected_all": result.disconnected_all,
        },
        "latency_ms": latency_summary(result.latencies_ms),
        "failures": dict(result.failures),
        "messages": {"published": result.published, "received": result.received},
        "duration": round(result.duration, 3),
        "files": {"samples": SAMPLES_FILE, "plot": PLOT_FILE if result.memory_sampled else None},
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_samples(path: Path, result: RunResult) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["elapsed_s", "rss_bytes", "connections", "pool_capacity"])
        for sample in result.samples:
            writer.writerow([f"{sample.elapsed:.3f}", sample.rss, sample.connections, sample.pool_capacity or ""])


def plot_memory(path: Path, result: RunResult) -> None:
    """Draw RSS against connections, the checkpoints and the target line (baseline + max_mb)."""
    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    # Only the ramp and hold are drawn; the disconnect at the end would retrace the curve.
    peak = max(range(len(result.samples)), key=lambda i: result.samples[i].connections, default=0)
    ramp = result.samples[: peak + 1]
    axes.plot([s.connections for s in ramp], [s.rss / MB for s in ramp], color="tab:blue", linewidth=1, label="broker RSS")
    if result.checkpoints:
        measured = [c for c in result.checkpoints if c.rss is not None]
        axes.scatter([c.connections for c in measured], [c.rss / MB for c in measured], color="tab:blue", zorder=3, label="checkpoints")

    if result.baseline_rss is not None:
        baseline = result.baseline_rss / MB
        axes.axhline(baseline, color="grey", linestyle=":", linewidth=1, label="baseline RSS")
        points = sorted(
            (t.connections, baseline + t.max_mb)
            for t in result.options.scenario.targets
            if t.connections is not None and t.connections <= result.options.count
        )
        if points:
            axes.plot(*zip(*points), color="tab:red", linestyle="--", marker="x", label="target (baseline + max)")

    axes.set_xlabel("connections")
    axes.set_ylabel("RSS (MB)")
    axes.set_title(f"Broker memory, {result.options.scenario.name} preset, {result.options.count:,} connections")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_files(out: Path, result: RunResult, report: dict[str, Any]) -> None:
    """Write report.json, samples.csv and (when memory was sampled) memory.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / REPORT_FILE, report)
    write_samples(out / SAMPLES_FILE, result)
    if result.memory_sampled:
        plot_memory(out / PLOT_FILE, result)


def _result_cell(status: str) -> str:
    return f"[{_STATUS_STYLE[status]}]{status}[/]"


def _target_cells(result: TargetResult | None) -> list[str]:
    """Return the target, result and note cells of a row, dashes where no target applies."""
    if result is None:
        return ["–", "–", ""]
    return [describe_target(result), _result_cell(result.status), describe_stated_range(result)]


def memory_table(result: RunResult, targets: Sequence[TargetResult]) -> Table:
    """Build the table of baseline, startup, checkpoints and targets with their outcomes.

    The note column, shown only when a row needs it, gives a range the source states
    where only its upper bound is checked, so that the result matches the target column.
    """
    by_connections = {t.target.connections: t for t in targets if t.target.connections is not None}
    rows: list[list[str]] = []

    if result.baseline_rss is not None:
        rows.append(["baseline", "0", "–", megabytes(result.baseline_rss), "–", *_target_cells(None)])
    if result.startup_rss is not None:
        capacity = f"{result.startup_capacity:,}" if result.startup_capacity else "–"
        startup = by_connections.get(0)
        rows.append(["startup", "0", capacity, megabytes(result.startup_rss), megabytes(result.startup_growth), *_target_cells(startup)])
    for checkpoint in result.checkpoints:
        capacity = f"{checkpoint.pool_capacity:,}" if checkpoint.pool_capacity else "–"
        rows.append([
            f"{checkpoint.target:,}",
            f"{checkpoint.connections:,}",
            capacity,
            megabytes(checkpoint.rss),
            megabytes(checkpoint.growth),
            *_target_cells(by_connections.get(checkpoint.target)),
        ])
    for target in targets:
        if target.target.pool_capacity is not None:
            measured = "–" if target.measured_mb is None else f"{target.measured_mb:,.1f} MB"
            connections = "–" if target.connections is None else f"{target.connections:,}"
            rows.append([
                target.target.label,
                connections,
                f"{target.target.pool_capacity:,}",
                megabytes(target.rss),
                measured,
                *_target_cells(target),
            ])
        elif target.target.connections and target.status == NOT_REACHED and target.target.connections > result.options.count:
            rows.append([f"{target.target.connections:,}", "–", "–", "–", "–", *_target_cells(target)])

    headings = ["checkpoint", "connections", "pool", "RSS", "growth", "target", "result"]
    if any(row[-1] for row in rows):
        headings.append("note")
    else:
        rows = [row[:-1] for row in rows]
    table = Table(title=f"Broker memory, {result.options.scenario.name} preset")
    for heading in headings:
        table.add_column(heading, justify="left" if heading in ("checkpoint", "result", "note") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def render(console: Console, result: RunResult, targets: Sequence[TargetResult], report: dict[str, Any], out: Path) -> None:
    """Print the checkpoint table, latencies, failures and the outcome.

    Sentences are printed with soft wrapping, so a narrow terminal breaks them only at
    its own edge and a file or pipe receives each one on a single line.
    """
    if result.checkpoints or result.startup_rss is not None:
        console.print(memory_table(result, targets))

    latency = report["latency_ms"]
    if latency["count"]:
        console.print(
            f"Connect latency over {latency['count']:,} connects: p50 {latency['p50']:.1f} ms, "
            f"p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms.",
            soft_wrap=True,
        )
    pool = report["pool"]
    if pool["capacity"] is not None:
        console.print(
            f"Pool capacity {pool['capacity']:,} after {pool['expansions'] or 0} expansion(s), from the broker's $SYS topics.",
            soft_wrap=True,
        )
    if result.failures:
        failures = Table(title="Connection failures by reason")
        failures.add_column("reason")
        failures.add_column("count", justify="right")
        for reason, number in result.failures.most_common():
            failures.add_row(escape(reason), f"{number:,}")
        console.print(failures)
    if result.memory_note:
        console.print(escape(result.memory_note), style="yellow", soft_wrap=True)

    files = f"{out / REPORT_FILE}, {out / SAMPLES_FILE}" + (f", {out / PLOT_FILE}" if result.memory_sampled else "")
    console.print(f"Report files: {escape(files)}", soft_wrap=True)
    code = report["exit_code"]
    if code == EXIT_INCOMPLETE:
        console.print(escape(result.aborted or ""), style="bold red", highlight=False, soft_wrap=True)
    elif code == EXIT_TARGET_MISSED:
        missed = ", ".join(t.target.label for t in targets if t.status == FAILED)
        console.print(f"[bold red]Memory target(s) missed:[/] {escape(missed)}.", soft_wrap=True)
    else:
        console.print("[green]Every memory target within the run was met.[/]", soft_wrap=True)
