"""Start and stop the child processes of a run (the bundled broker, locust workers) by PID."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from pathlib import Path

# prctl option that sends the child a signal when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    # Runs in the child between fork and exec: a killed load tester must not leave a broker
    # or worker behind, so the kernel sends SIGTERM when the parent goes away.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` with stdout and stderr going to `log_path`.

    The child gets its own session, so a Ctrl-C in the terminal reaches only the load
    tester, which then stops its children in order.
    """
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
    finally:
        log.close()


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Send SIGTERM to `process`, wait up to `timeout` seconds, then SIGKILL; return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def log_tail(log_path: Path, lines: int = 20) -> str:
    """Return the last `lines` lines of a child's log, or a note when there is none."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(no output)"
