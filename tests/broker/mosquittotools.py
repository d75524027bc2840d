"""Debian's mosquitto_pub and mosquitto_sub run against a test broker, always with timeouts."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading

from brokerprocess import STOP_TIMEOUT, WAIT_TIMEOUT, BrokerProcess


class MosquittoSub:
    """A running mosquitto_sub whose output lines arrive on a queue."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = WAIT_TIMEOUT) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"mosquitto_sub printed no line within {timeout} s (running: {self.process.poll() is None})."
            ) from None

    def wait(self, timeout: float = WAIT_TIMEOUT) -> int:
        exit_code = self.process.wait(timeout=timeout)
        self._reader.join(timeout)
        self.stderr = self.process.stderr.read()
        return exit_code

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.process.stdout.close()
        self.process.stderr.close()


class MosquittoTools:
    """Run Debian's mosquitto_pub and mosquitto_sub against a broker, always with timeouts."""

    def __init__(self) -> None:
        self.subscribers: list[MosquittoSub] = []

    @staticmethod
    def address(broker: BrokerProcess) -> list[str]:
        return ["-h", broker.host, "-p", str(broker.port)]

    def pub(self, broker: BrokerProcess, *args: str, timeout: float = WAIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run mosquitto_pub to completion and return its result."""
        return subprocess.run(
            ["mosquitto_pub", *self.address(broker), *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def sub_run(self, broker: BrokerProcess, *args: str, timeout: float = WAIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run mosquitto_sub to completion (give it -C and -W) and return its result."""
        return subprocess.run(
            ["mosquitto_sub", *self.address(broker), *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def sub(self, broker: BrokerProcess, *args: str, max_seconds: int = 10) -> MosquittoSub:
        """Start mosquitto_sub in the background; `-W max_seconds` bounds its life."""
        process = subprocess.Popen(
            ["mosquitto_sub", *self.address(broker), "-W", str(max_seconds), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        subscriber = MosquittoSub(process)
        self.subscribers.append(subscriber)
        return subscriber

    def stop_all(self) -> None:
        for subscriber in self.subscribers:
            subscriber.stop()
