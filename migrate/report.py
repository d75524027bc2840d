"""Show command results: unified diffs, per-file lines, a JSON summary and the preset table."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from migrate.results import FileResult
from scenarios import Scenario

# Preset keys shown as table columns, in write order.
_PRESET_COLUMNS = ("initial_pool_size", "max_pool_size", "max_connections", "io_entries", "forward_batch_size")

# Status words printed in colour; anything else is printed plain.
_STATUS_STYLES = {
    "converted": "green",
    "restored": "green",
    "reverted": "green",
    "cleaned": "green",
    "unchanged": "dim",
    "would-convert": "yellow",
    "would-restore": "yellow",
    "would-revert": "yellow",
    "would-clean": "yellow",
    "conflict": "red",
    "changed": "red",
    "error": "red",
}


def unified_diff(result: FileResult) -> str:
    """Return the unified diff between the file now and after the command, or "" when equal."""
    before = result.original_text or ""
    after = result.new_text if result.new_text is not None else before
    if before == after:
        return ""
    lines = difflib.unified_diff(
        _diff_lines(before), _diff_lines(after), fromfile=str(result.path), tofile=str(result.path)
    )
    return "".join(lines)


def _diff_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def describe_change(change: dict[str, Any]) -> str:
    key = change["key"].upper() if change["key"].islower() else change["key"]
    where = f"line {change['line']}: " if change.get("line") else ""
    action = change["action"]
    if action == "replaced" and change.get("old") is not None:
        return f"{where}MAX_CLIENTS_POOL = {change['old']} replaced by {key} = {change['new']}"
    if action == "removed":
        return f"{where}{key} = {change['old']} removed"
    if action == "updated":
        return f"{where}{key} changed from {change['old']} to {change['new']}"
    return f"{where}{key} = {change['new']} {action}"


def print_results(results: list[FileResult], console: Console, errors: Console, *, diff: bool) -> None:
    """Print one line per file, its changes and, with `diff`, its unified diff."""
    for result in results:
        style = _STATUS_STYLES.get(result.status, "")
        target = errors if result.exit_code else console
        target.print(f"[{style}]{result.status}[/]: ", end="", soft_wrap=True, highlight=False)
        target.print(result.message, soft_wrap=True, highlight=False, markup=False)
        for change in result.changes:
            console.print(f"  {describe_change(change)}", soft_wrap=True, highlight=False, markup=False)
        if diff:
            text = unified_diff(result)
            if text:
                console.out(text, end="", highlight=False)

    counts = Counter(result.status for result in results)
    if counts:
        summary = ", ".join(f"{count} {status}" for status, count in counts.items())
        console.print(f"{len(results)} file(s): {summary}.", soft_wrap=True, highlight=False, markup=False)
    else:
        console.print("No file with pool settings was found.", soft_wrap=True, highlight=False, markup=False)


def json_summary(command: str, results: list[FileResult], exit_code: int, **extra: Any) -> str:
    """Return the machine-readable summary of a command."""
    document = {"command": command, "exit_code": exit_code, **extra, "files": [r.as_dict() for r in results]}
    return json.dumps(document, indent=2, ensure_ascii=False)


def presets_table(presets: list[Scenario]) -> Table:
    """Build a table with one row per preset; a dash marks a key the preset leaves alone."""
    table = Table(title="Presets (poolmigrate convert --scenario NAME)")
    table.add_column("preset", style="bold")
    for key in _PRESET_COLUMNS:
        table.add_column(key.upper(), justify="right")
    table.add_column("memory targets (Zig broker)")
    for preset in presets:
        cells = [f"{preset.values[key]:,}" if key in preset.values else "-" for key in _PRESET_COLUMNS]
        targets = "\n".join(_format_target(target) for target in preset.targets)
        table.add_row(preset.name, *cells, targets)
    return table


def _format_target(target: Any) -> str:
    low = f"{target.min_mb:g}–" if target.min_mb is not None else "≤ "
    return f"{target.label}: {low}{target.max_mb:g} MB"


def presets_json(presets: list[Scenario]) -> str:
    document = [
        {
            "name": preset.name,
            "description": preset.description,
            "values": preset.values,
            "targets": [
                {
                    "label": t.label,
                    "connections": t.connections,
                    "pool_capacity": t.pool_capacity,
                    "min_mb": t.min_mb,
                    "max_mb": t.max_mb,
                }
                for t in preset.targets
            ],
        }
        for preset in presets
    ]
    return json.dumps(document, indent=2, ensure_ascii=False)
