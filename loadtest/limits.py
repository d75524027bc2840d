"""Operating-system limits that cap how many connections one process or one address can hold."""

from __future__ import annotations

import math
import resource
from pathlib import Path

# File descriptors a load process needs besides its MQTT sockets: the interpreter, locust's
# ZeroMQ sockets, log files and the epoll object.
RESERVED_DESCRIPTORS = 64

# Linux's default ephemeral range (32768-60999), used when /proc cannot be read.
DEFAULT_PORT_RANGE = (32768, 60999)

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit and return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            # Some systems report an infinite hard limit that setrlimit still rejects.
            pass
    return soft


def ephemeral_port_count(path: Path = PORT_RANGE_FILE) -> int:
    """Return how many local ports the kernel hands out for outgoing connections from one address."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        low, high = DEFAULT_PORT_RANGE
    return high - low + 1


def check_capacity(count: int, workers: int, addresses: int, nofile: int, ports: int) -> str | None:
    """Return why `count` connections cannot be opened, or None when the limits allow it.

    `workers` processes share the connections evenly, so each needs its share of
    descriptors plus RESERVED_DESCRIPTORS. Each source address offers `ports` ports.
    """
    per_worker = math.ceil(count / workers)
    if per_worker + RESERVED_DESCRIPTORS > nofile:
        needed_workers = math.ceil(count / max(nofile - RESERVED_DESCRIPTORS, 1))
        return (
            f"The open-file limit is too low: each of the {workers} worker(s) would hold {per_worker} connections "
            f"but may open only {nofile} files. Raise it with `ulimit -n {per_worker + RESERVED_DESCRIPTORS}` "
            f"(and the hard limit in /etc/security/limits.conf), or use --workers {needed_workers}."
        )
    if count > ports * addresses:
        needed = math.ceil(count / ports)
        return (
            f"{count} connections need more local ports than {addresses} source address(es) offer "
            f"({ports} ephemeral ports each). Add loopback addresses with --source-addresses, "
            f"for example {needed} of them: --source-addresses "
            + ",".join(f"127.0.0.{i + 2}" for i in range(min(needed, 4)))
            + ("..." if needed > 4 else "")
            + "."
        )
    return None
