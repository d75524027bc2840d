"""Resident set size of this process, read with psutil."""

from __future__ import annotations

import psutil

_PROCESS = psutil.Process()

# Bytes per megabyte. Memory figures use SI megabytes everywhere, as the presets' targets do.
BYTES_PER_MEGABYTE = 1_000_000


def current_rss() -> int:
    """Return this process's resident set size in bytes."""
    return _PROCESS.memory_info().rss


def process_start_time() -> float:
    """Return when this process started, in seconds since the epoch."""
    return _PROCESS.create_time()


def format_megabytes(size: int) -> str:
    """Format a byte count as megabytes with one decimal, such as '21.4 MB'."""
    return f"{size / BYTES_PER_MEGABYTE:.1f} MB"
