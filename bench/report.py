"""Reduce benchmark runs to medians and render them as a markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the table: a figure that each run of a scenario records."""

    scenario: str
    key: str
    label: str
    unit: str
    # Scale from the recorded value to the displayed unit, e.g. 1/1024 for bytes to KiB.
    scale: float = 1.0
    digits: int = 0
    # Target for the bundled broker as (comparison, value in displayed units), or None.
    target: tuple[str, float] | None = None

    def meets(self, value: float) -> bool | None:
        if self.target is None:
            return None
        comparison, bound = self.target
        return value <= bound if comparison == "<=" else value >= bound


KIB = 1 / 1024
MIB = 1 / (1024 * 1024)

METRICS = (
    Metric("idle", "bytes_per_connection", "RSS growth per idle connection", "KiB", KIB, 2, ("<=", 6)),
    Metric("idle", "rss_before", "RSS before connecting", "MiB", MIB, 1),
    Metric("idle", "rss_after", "RSS with all connections open", "MiB", MIB, 1),
    Metric("idle", "connect_seconds", "time to open all connections", "s", 1, 2),
    Metric("idle", "other_cores", "idle: CPU cores busy with other processes", "cores", 1, 2),
    Metric("fanin", "rate", "QoS 0 fan-in, messages received per second", "msg/s", 1, 0, (">=", 50_000)),
    Metric("fanin", "delivered_fraction", "QoS 0 fan-in, received / sent", "%", 100, 2, (">=", 100)),
    Metric("fanin", "broker_cpu_seconds", "QoS 0 fan-in, broker CPU time", "s", 1, 1),
    Metric("fanin", "loadgen_cpu_seconds", "QoS 0 fan-in, load generator CPU time", "s", 1, 1),
    Metric("fanin", "other_cores", "QoS 0 fan-in, CPU cores busy with other processes", "cores", 1, 2),
    Metric("fanout", "rate", "QoS 0 fan-out, deliveries per second", "msg/s", 1, 0, (">=", 150_000)),
    Metric("fanout", "delivered_fraction", "QoS 0 fan-out, received / (sent × 100)", "%", 100, 2),
    Metric("fanout", "broker_cpu_seconds", "QoS 0 fan-out, broker CPU time", "s", 1, 1),
    Metric("fanout", "loadgen_cpu_seconds", "QoS 0 fan-out, load generator CPU time", "s", 1, 1),
    Metric("fanout", "other_cores", "QoS 0 fan-out, CPU cores busy with other processes", "cores", 1, 2),
    Metric("qos1", "rate", "QoS 1, messages acknowledged and delivered per second", "msg/s", 1, 0, (">=", 25_000)),
    Metric("qos1", "ack_rate", "QoS 1, PUBACKs per second at the publisher", "msg/s", 1, 0),
    Metric("qos1", "delivered_fraction", "QoS 1, received / sent", "%", 100, 2),
    Metric("qos1", "broker_cpu_seconds", "QoS 1, broker CPU time", "s", 1, 1),
    Metric("qos1", "loadgen_cpu_seconds", "QoS 1, load generator CPU time", "s", 1, 1),
    Metric("qos1", "other_cores", "QoS 1, CPU cores busy with other processes", "cores", 1, 2),
    Metric("startup-1", "startup_rss_growth", "pool of 1 slot: startup_rss − baseline_rss", "KiB", KIB, 0),
    Metric("startup-1", "startup_seconds", "pool of 1 slot: process start to listening", "ms", 1000, 0),
    Metric("startup-default", "startup_rss_growth", "default pool (1 024 slots): startup_rss − baseline_rss", "KiB", KIB, 0, ("<=", 1024)),
    Metric("startup-default", "preheat_rss_estimate", "default pool: RSS growth above the 1-slot pool", "KiB", KIB, 0, ("<=", 1024)),
    Metric("startup-default", "startup_seconds", "default pool: process start to listening", "ms", 1000, 0),
    Metric("startup-default", "preheat_seconds_estimate", "default pool: preheating time, scaled from the legacy pool", "ms", 1000, 1, ("<=", 50)),
    Metric("startup-default", "baseline_rss", "default pool: baseline RSS (before preheating)", "MiB", MIB, 1),
    Metric("startup-legacy", "startup_rss_growth", "legacy pool (100 000 slots): startup_rss − baseline_rss", "MiB", MIB, 1),
    Metric("startup-legacy", "startup_seconds", "legacy pool: process start to listening", "ms", 1000, 0),
)


def medians(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Return {(broker, scenario): {key: median}} over the runs that did not fail."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("error"):
            continue
        grouped.setdefault((run["broker"], run["scenario"]), []).append(run["values"])

    result: dict[tuple[str, str], dict[str, float]] = {}
    for group, values in grouped.items():
        keys = set().union(*(v.keys() for v in values))
        result[group] = {
            key: statistics.median(v[key] for v in values if v.get(key) is not None)
            for key in keys
            if any(v.get(key) is not None for v in values)
        }
    return result


def format_value(metric: Metric, value: float | None, check: bool) -> str:
    if value is None:
        return "not measured"
    scaled = value * metric.scale
    text = f"{scaled:,.{metric.digits}f}".replace(",", " ")
    if check:
        meets = metric.meets(scaled)
        if meets is True:
            text += " (met)"
        elif meets is False:
            text += " (**missed**)"
    return text


def markdown_table(
    runs: Sequence[dict[str, Any]], brokers: Sequence[str], bundled: Sequence[str]
) -> str:
    """Render the medians as a markdown table, one column per broker.

    Targets apply only to the brokers named in `bundled`; their cells state whether the
    median met the target.
    """
    table = medians(runs)
    header = ["scenario", "figure", "unit", "target (bundled broker)", *brokers]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for metric in METRICS:
        if not any((broker, metric.scenario) in table for broker in brokers):
            continue
        target = f"{metric.target[0]} {metric.target[1]:g}" if metric.target else ""
        cells = [metric.scenario, metric.label, metric.unit, target]
        for broker in brokers:
            value = table.get((broker, metric.scenario), {}).get(metric.key)
            scenario_ran = any(run["broker"] == broker and run["scenario"] == metric.scenario for run in runs)
            if value is None and not scenario_ran:
                cells.append("—")
            else:
                cells.append(format_value(metric, value, check=broker in bundled))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(runs: Sequence[dict[str, Any]]) -> list[str]:
    """List each failed run as one line: broker, scenario, run number and error."""
    return [
        f"{run['broker']} / {run['scenario']} / run {run['run']}: {run['error']}"
        for run in runs
        if run.get("error")
    ]
