"""Compare the bundled broker's startup with a legacy preallocated pool and with a preset."""

from __future__ import annotations

import csv
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from broker.config import LEGACY_POOL_KEY  # noqa: E402
from loadtest.brokerproc import BrokerStartError, BundledBroker, write_config  # noqa: E402
from loadtest.checkpoints import MB  # noqa: E402
from loadtest.report import PLOT_FILE, REPORT_FILE, SAMPLES_FILE, write_json  # noqa: E402
from scenarios import Scenario  # noqa: E402


class CompareFailed(RuntimeError):
    """A broker start failed, so the comparison has no figure for one mode."""


@dataclass(frozen=True, slots=True)
class Startup:
    """One start of the bundled broker, as its ready file reported it."""

    mode: str
    run: int
    pool_capacity: int
    startup_seconds: float
    baseline_rss: int
    startup_rss: int

    @property
    def growth(self) -> int:
        return self.startup_rss - self.baseline_rss


@dataclass(frozen=True, slots=True)
class ModeSummary:
    """The median of several starts in one mode."""

    mode: str
    setting: str
    pool_capacity: int
    startup_seconds: float
    startup_rss: float
    growth: float


@dataclass(frozen=True)
class Comparison:
    legacy_pool: int
    scenario: Scenario
    starts: tuple[Startup, ...]
    legacy: ModeSummary
    preset: ModeSummary


def measure_starts(mode: str, pool_values: dict[str, int], runs: int, progress: Callable[[str], None]) -> list[Startup]:
    """Start and stop the broker `runs` times with `pool_values` and return what each start reported."""
    starts = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="loadtest-compare-") as workdir:
            config = write_config(Path(workdir), pool_values, sys_interval=0)
            broker = BundledBroker(config, Path(workdir))
            try:
                ready = broker.start()
            except BrokerStartError as error:
                raise CompareFailed(
                    f"The comparison could not complete because, in {mode} mode, {error.reason}. "
                    f"Its output:\n{error.output}"
                ) from None
            finally:
                broker.stop()
        starts.append(Startup(mode, run, ready.pool_capacity, ready.startup_seconds, ready.baseline_rss, ready.startup_rss))
        progress(
            f"{mode} start {run}/{runs}: {ready.pool_capacity:,} slots, {ready.startup_seconds:.2f} s, "
            f"RSS {ready.startup_rss / MB:.1f} MB."
        )
    return starts


def summarize(mode: str, setting: str, starts: Sequence[Startup]) -> ModeSummary:
    return ModeSummary(
        mode=mode,
        setting=setting,
        pool_capacity=starts[0].pool_capacity,
        startup_seconds=statistics.median(s.startup_seconds for s in starts),
        startup_rss=statistics.median(s.startup_rss for s in starts),
        growth=statistics.median(s.growth for s in starts),
    )


def compare_startup(legacy_pool: int, scenario: Scenario, runs: int, progress: Callable[[str], None] = lambda text: None) -> Comparison:
    """Measure `runs` starts with max_clients_pool = `legacy_pool`, then `runs` with the preset."""
    legacy_starts = measure_starts("legacy", {LEGACY_POOL_KEY: legacy_pool}, runs, progress)
    preset_starts = measure_starts(scenario.name, dict(scenario.values), runs, progress)
    return Comparison(
        legacy_pool=legacy_pool,
        scenario=scenario,
        starts=(*legacy_starts, *preset_starts),
        legacy=summarize("legacy", f"max_clients_pool = {legacy_pool:,}", legacy_starts),
        preset=summarize(scenario.name, f"initial_pool_size = {scenario.values['initial_pool_size']:,}", preset_starts),
    )


def _saving(old: float, new: float) -> dict[str, float | None]:
    return {"absolute": old - new, "percent": (old - new) / old * 100 if old else None}


def build_report(result: Comparison) -> dict[str, Any]:
    """Return the comparison as plain data, the content of report.json."""

    def mode(summary: ModeSummary) -> dict[str, Any]:
        return {
            "mode": summary.mode,
            "setting": summary.setting,
            "pool_capacity": summary.pool_capacity,
            "startup_seconds": summary.startup_seconds,
            "startup_rss": summary.startup_rss,
            "growth": summary.growth,
        }

    return {
        "legacy_pool": result.legacy_pool,
        "scenario": result.scenario.name,
        "runs": len(result.starts) // 2,
        "legacy": mode(result.legacy),
        "preset": mode(result.preset),
        "saving": {
            "startup_seconds": _saving(result.legacy.startup_seconds, result.preset.startup_seconds),
            "startup_rss": _saving(result.legacy.startup_rss, result.preset.startup_rss),
            "growth": _saving(result.legacy.growth, result.preset.growth),
        },
        "files": {"samples": SAMPLES_FILE, "plot": PLOT_FILE},
    }


def write_samples(path: Path, result: Comparison) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mode", "run", "pool_capacity", "startup_seconds", "baseline_rss", "startup_rss"])
        for start in result.starts:
            writer.writerow([start.mode, start.run, start.pool_capacity, f"{start.startup_seconds:.4f}", start.baseline_rss, start.startup_rss])


def plot(path: Path, result: Comparison) -> None:
    """Draw two bar charts side by side: RSS after startup and startup time, per mode."""
    figure, (memory, seconds) = plt.subplots(1, 2, figsize=(9, 4.5), dpi=100)
    labels = [f"legacy\n{result.legacy.pool_capacity:,} slots", f"{result.preset.mode}\n{result.preset.pool_capacity:,} slots"]
    colours = ["tab:red", "tab:green"]
    rss = [result.legacy.startup_rss / MB, result.preset.startup_rss / MB]
    growth = [result.legacy.growth / MB, result.preset.growth / MB]
    memory.bar(labels, rss, color=colours, alpha=0.35, label="RSS after startup")
    memory.bar(labels, growth, color=colours, label="growth above baseline")
    memory.set_ylabel("MB")
    memory.set_title("Memory after startup")
    memory.legend()
    seconds.bar(labels, [result.legacy.startup_seconds, result.preset.startup_seconds], color=colours)
    seconds.set_ylabel("seconds")
    seconds.set_title("Startup time")
    figure.suptitle(f"Median of {len(result.starts) // 2} start(s) of the bundled broker")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_files(out: Path, result: Comparison, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / REPORT_FILE, report)
    write_samples(out / SAMPLES_FILE, result)
    plot(out / PLOT_FILE, result)


def render(console: Console, result: Comparison, out: Path) -> None:
    """Print the two modes side by side with the saving."""
    legacy, preset = result.legacy, result.preset
    table = Table(title=f"Startup of the bundled broker, median of {len(result.starts) // 2} start(s)")
    table.add_column("")
    table.add_column("legacy", justify="right")
    table.add_column(f"{preset.mode} preset", justify="right")
    table.add_column("saving", justify="right")

    def saving(old: float, new: float, unit: str, scale: float) -> str:
        percent = f" ({(old - new) / old * 100:.0f} %)" if old else ""
        return f"{(old - new) / scale:,.2f} {unit}{percent}"

    table.add_row("pool setting", legacy.setting, preset.setting, "")
    table.add_row("slots preheated", f"{legacy.pool_capacity:,}", f"{preset.pool_capacity:,}", f"{legacy.pool_capacity - preset.pool_capacity:,}")
    table.add_row("startup time", f"{legacy.startup_seconds:.2f} s", f"{preset.startup_seconds:.2f} s", saving(legacy.startup_seconds, preset.startup_seconds, "s", 1))
    table.add_row("RSS after startup", f"{legacy.startup_rss / MB:,.1f} MB", f"{preset.startup_rss / MB:,.1f} MB", saving(legacy.startup_rss, preset.startup_rss, "MB", MB))
    table.add_row("growth above baseline", f"{legacy.growth / MB:,.1f} MB", f"{preset.growth / MB:,.1f} MB", saving(legacy.growth, preset.growth, "MB", MB))
    console.print(table)
    console.print(f"Report files: {out / REPORT_FILE}, {out / SAMPLES_FILE}, {out / PLOT_FILE}")
