"""Show command results: unified diffs, per-file lines, a JSON summary and the preset table."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from migrate.results import FileResult
from scenarios import Scenario

# Preset keys shown as table rows, in write order.
_PRESET_KEYS = ("initial_pool_size", "max_pool_size", "max_connections", "io_entries", "forward_batch_size")

# Status words printed in colour; anything else is printed plain.
_STATUS_STYLES = {
    "converted": "green",
    "restored": "green",
    "reverted": "green",
    "cleaned": "green",
    "unchanged": "dim",
    "skipped": "dim",
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
    """Describe one change with the keys and values as the file writes them, so the text can be searched for."""
    where = f"line {change['line']}: " if change.get("line") else ""
    before = change.get("old_text") or f"{change['key']} = {change.get('old')}"
    after = change.get("new_text") or f"{change['key']} = {change.get('new')}"
    action = change["action"]
    if action == "replaced":
        return f"{where}{before} replaced by {after}"
    if action == "removed":
        return f"{where}{before} removed"
    if action == "updated":
        return f"{where}{before} changed to {after}"
    return f"{where}{after} {action}"


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


def presets_tables(presets: list[Scenario]) -> Group:
    """Build two narrow tables, values and memory targets, that fit 80 columns without cutting a value.

    A dash marks a key the preset leaves alone. Cells fold instead of ending in "…" when
    the terminal is narrower still.
    """
    values = Table(title="Presets (poolmigrate convert --scenario NAME)")
    values.add_column("key", style="bold", overflow="fold")
    for preset in presets:
        values.add_column(preset.name, justify="right", overflow="fold")
    for key in _PRESET_KEYS:
        cells = [f"{preset.values[key]:,}" if key in preset.values else "-" for preset in presets]
        values.add_row(key, *cells)

    targets = Table(title="Memory targets stated for the Zig broker")
    targets.add_column("preset", style="bold", overflow="fold")
    targets.add_column("at", overflow="fold")
    targets.add_column("memory", justify="right", overflow="fold")
    for preset in presets:
        last = len(preset.targets) - 1
        for index, target in enumerate(preset.targets):
            name = preset.name if index == 0 else ""
            targets.add_row(name, target.label, _format_target(target), end_section=index == last)
    return Group(values, targets)


def _format_target(target: Any) -> str:
    low = f"{target.min_mb:g}–" if target.min_mb is not None else "≤ "
    return f"{low}{target.max_mb:g} MB"


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
