"""Broker subprocesses for black-box tests: start, wait until ready, read logs, stop.

The bundled broker runs as `python -m broker CONFIG --port 0 --ready-file PATH`. With
BROKER_TESTS_REFERENCE=mosquitto, Debian's mosquitto runs in its place.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from brokersettings import BASE_SETTINGS, HOST, merge_settings, mosquitto_config

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

# Seconds for the broker to write its ready file. Startup of a small pool takes well under
# a second on an idle machine, so this bound only turns a hang into a failure.
START_TIMEOUT = 15.0
# Seconds a broker gets to exit after SIGTERM or SIGINT.
STOP_TIMEOUT = 5.0
# Seconds any single wait on a network event may take before the test fails.
WAIT_TIMEOUT = 5.0
# Seconds between two looks at a file or a process that has no event to wait on.
POLL_INTERVAL = 0.02

REFERENCE_VARIABLE = "BROKER_TESTS_REFERENCE"
REFERENCE_BROKER = os.environ.get(REFERENCE_VARIABLE, "").strip().lower() or None
MOSQUITTO_BINARY = "/usr/sbin/mosquitto"


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class BrokerProcess:
    """A running broker: its address, process and log file."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    config_path: Path | None
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # Set once a test or the teardown has signalled the broker to stop.
    stop_requested: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """Return what the broker has written to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self, level: str | None = None) -> list[str]:
        lines = self.log_text().splitlines()
        if level is None:
            return lines
        return [line for line in lines if f" {level} " in line]

    def wait_for_log(self, pattern: str, timeout: float = WAIT_TIMEOUT, *, start: int = 0) -> re.Match[str]:
        """Wait until a log line at or after line `start` matches `pattern` and return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text().splitlines()[start:]:
                match = regex.search(line)
                if match:
                    return match
            if time.monotonic() > deadline or not self.running:
                state = "" if self.running else f" The broker exited with {self.process.returncode}."
                raise AssertionError(
                    f"No broker log line matched {pattern!r} within {timeout} s.{state} "
                    f"Log so far:\n{self.log_text()[-4000:]}"
                )
            self.process_wait(POLL_INTERVAL)

    def process_wait(self, seconds: float) -> int | None:
        """Wait up to `seconds` for the process to exit and return its exit code, if it did."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signal_number: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `signal_number` to the broker by PID and return its exit code."""
        self.stop_requested = True
        if self.running:
            os.kill(self.pid, signal_number)
        exit_code = self.process_wait(timeout)
        if exit_code is None:
            self.process.kill()
            self.process.wait(timeout=timeout)
            raise AssertionError(
                f"The broker (PID {self.pid}) did not exit within {timeout} s of signal {signal_number} "
                f"and was killed. Log:\n{self.log_text()[-4000:]}"
            )
        return exit_code


def broker_command(config_path: Path | None, ready_path: Path, extra_args: tuple[str, ...] = ()) -> list[str]:
    command = [sys.executable, "-m", "broker"]
    if config_path is not None:
        command.append(str(config_path))
    return [*command, "--port", "0", "--ready-file", str(ready_path), *extra_args]


def broker_environment() -> dict[str, str]:
    environment = dict(os.environ)
    paths = [str(REPOSITORY_ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def wait_for_ready_file(process: subprocess.Popen[bytes], ready_path: Path, log_path: Path) -> dict[str, Any]:
    """Wait for the ready file that the broker writes once it listens, and return its JSON."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if ready_path.exists():
            try:
                return json.loads(ready_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                pass  # A partly written file: read it again on the next poll.
        if process.poll() is not None:
            raise AssertionError(
                f"The broker exited with code {process.returncode} before writing {ready_path}. "
                f"Log:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"The broker did not write {ready_path} within {START_TIMEOUT} s and was killed. "
                f"Log:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            process.wait(timeout=POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass


def wait_for_listener(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Wait until `port` accepts TCP connections; for brokers without a ready file."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
            return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"The reference broker did not listen on port {port}. Log:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            process.wait(timeout=POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass


class BrokerLauncher:
    """Start brokers in a directory and stop every one of them at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.brokers: list[BrokerProcess] = []
        self._count = 0

    def write_config(self, settings: dict[str, Any], name: str) -> Path:
        path = self.directory / name
        path.write_text(tomlkit.dumps(settings), encoding="utf-8")
        return path

    def start(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        config_text: str | None = None,
        use_config: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> BrokerProcess:
        """Start a broker with BASE_SETTINGS plus `overrides` (or `config_text` verbatim)."""
        settings = merge_settings(BASE_SETTINGS, overrides or {})
        if REFERENCE_BROKER == "mosquitto":
            return self._start_mosquitto(settings)

        self._count += 1
        config_path: Path | None = None
        if config_text is not None:
            config_path = self.directory / f"broker-{self._count}.toml"
            config_path.write_text(config_text, encoding="utf-8")
        elif use_config:
            config_path = self.write_config(settings, f"broker-{self._count}.toml")
        ready_path = self.directory / f"ready-{self._count}.json"
        log_path = self.directory / f"broker-{self._count}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                broker_command(config_path, ready_path, extra_args),
                cwd=self.directory,
                env=broker_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        broker = BrokerProcess(HOST, 0, process, config_path, log_path, settings=settings)
        self.brokers.append(broker)
        broker.ready = wait_for_ready_file(process, ready_path, log_path)
        broker.host = broker.ready.get("host", HOST)
        broker.port = int(broker.ready["port"])
        return broker

    def _start_mosquitto(self, settings: dict[str, Any]) -> BrokerProcess:
        self._count += 1
        port = free_port()
        config_path = self.directory / f"mosquitto-{self._count}.conf"
        config_path.write_text(mosquitto_config(settings, self.directory, port))
        log_path = self.directory / f"mosquitto-{self._count}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [MOSQUITTO_BINARY, "-c", str(config_path)],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        broker = BrokerProcess(HOST, port, process, config_path, log_path, settings=settings)
        self.brokers.append(broker)
        wait_for_listener(process, port, log_path)
        broker.ready = {"host": HOST, "port": port, "pid": process.pid}
        return broker

    def stop_all(self) -> None:
        """Stop every broker still running with SIGTERM and check that each exited with 0."""
        failures = []
        for broker in self.brokers:
            if not broker.running and broker.stop_requested:
                continue
            if not broker.running:
                failures.append(f"PID {broker.pid} exited by itself with {broker.process.returncode}. Log:\n{broker.log_text()[-2000:]}")
                continue
            exit_code = broker.stop(signal.SIGTERM)
            if exit_code != 0:
                failures.append(f"PID {broker.pid} exited with {exit_code}. Log:\n{broker.log_text()[-2000:]}")
        assert not failures, "A broker did not exit cleanly: " + "\n".join(failures)


def run_broker_command(args: list[str], timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m broker ARGS` to completion, for commands that exit by themselves."""
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=broker_environment(),
    )
