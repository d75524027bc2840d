"""Resident set size of this process, read with psutil."""

from __future__ import annotations

import psutil

_PROCESS = psutil.Process()


def current_rss() -> int:
    """Return this process's resident set size in bytes."""
    return _PROCESS.memory_info().rss


def process_start_time() -> float:
    """Return when this process started, in seconds since the epoch."""
    return _PROCESS.create_time()


def format_megabytes(size: int) -> str:
    """Format a byte count as megabytes with one decimal, such as '21.4 MB'."""
    return f"{size / 1_000_000:.1f} MB"
