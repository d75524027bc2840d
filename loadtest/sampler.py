"""Sample a process's resident set size (RSS) with psutil at a fixed interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# Seconds between RSS samples.
SAMPLE_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    """One RSS reading with the load at that moment."""

    elapsed: float
    rss: int
    connections: int
    pool_capacity: int | None


class RssSampler:
    """Read the RSS of process `pid` every `interval` seconds in a background thread.

    `load` returns the connection count and pool capacity to store beside each reading.
    Sampling stops by itself when the process exits, and `lost` then gives the reason.
    """

    def __init__(self, pid: int, load: Callable[[], tuple[int, int | None]], interval: float = SAMPLE_INTERVAL) -> None:
        self.process = psutil.Process(pid)
        self.load = load
        self.interval = interval
        self.samples: list[Sample] = []
        self.lost: str | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._new_sample = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{pid}", daemon=True)

    def start(self, started: float | None = None) -> None:
        """Start sampling; `started` is the time.monotonic() that elapsed times count from."""
        if started is not None:
            self._started = started
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval + 1)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def wait_after(self, moment: float, timeout: float) -> Sample | None:
        """Return the first sample taken after time.monotonic() `moment`, waiting up to `timeout` seconds."""
        elapsed = moment - self._started
        deadline = time.monotonic() + timeout
        with self._new_sample:
            while True:
                if self.samples and self.samples[-1].elapsed > elapsed:
                    return self.samples[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.lost is not None:
                    return None
                self._new_sample.wait(remaining)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.NoSuchProcess:
                self.lost = f"the broker process {self.process.pid} exited during the run"
            except psutil.AccessDenied:
                self.lost = f"reading the memory of process {self.process.pid} was denied (run loadtest as the same user as the broker)"
            else:
                connections, capacity = self.load()
                with self._new_sample:
                    self.samples.append(Sample(time.monotonic() - self._started, rss, connections, capacity))
                    self._new_sample.notify_all()
            if self.lost is not None:
                with self._new_sample:
                    self._new_sample.notify_all()
                return
            self._stop.wait(self.interval)
