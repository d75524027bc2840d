"""The ready file's startup_seconds against the time a test observes from outside."""

import json
import signal
import subprocess
import sys
import time

from brokerprocess import broker_environment

# Seconds the reported age may exceed the observed one: Linux counts a process's start in
# clock ticks of 10 ms, and the test finds the ready file a little after it is written.
TICK_MARGIN = 0.05

READY_TIMEOUT = 15.0


def test_startup_seconds_within_observed_time(tmp_path):
    ready_file = tmp_path / "ready.json"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "--port", "0", "--ready-file", str(ready_file)],
        env=broker_environment(), stderr=subprocess.PIPE,
    )
    try:
        while not ready_file.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() - started < READY_TIMEOUT, "the broker wrote no ready file in time"
            time.sleep(0.005)
        observed = time.monotonic() - started
        reported = json.loads(ready_file.read_text())["startup_seconds"]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=READY_TIMEOUT)

    assert reported > 0
    assert reported <= observed + TICK_MARGIN
