"""Resident set size and age of this process."""

from __future__ import annotations

import os
import time

import psutil

_PROCESS = psutil.Process()

# Bytes per megabyte. Memory figures use SI megabytes everywhere, as the presets' targets do.
BYTES_PER_MEGABYTE = 1_000_000


def current_rss() -> int:
    """Return this process's resident set size in bytes."""
    return _PROCESS.memory_info().rss


def process_age() -> float:
    """Return the seconds since this process started.

    On Linux both ends are read relative to boot (/proc/self/stat's start time and
    /proc/uptime), with the kernel's clock-tick resolution. psutil's create_time adds the
    boot time, which /proc/stat gives in whole seconds, so its difference from time.time()
    can be off by up to a second. It is used only where /proc cannot be read.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat_file:
            # The command name in field 2 may contain spaces, so count fields after its ')'.
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
    except (OSError, IndexError, ValueError):
        return time.time() - _PROCESS.create_time()
    # The list starts at field 3 (the state), so field 22 (starttime) is at index 19.
    started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return uptime - started_after_boot


def format_megabytes(size: int) -> str:
    """Format a byte count as megabytes with one decimal, such as '21.4 MB'."""
    return f"{size / BYTES_PER_MEGABYTE:.1f} MB"
