"""Run the bundled broker as a child process: write its config, start it, wait for its ready file, stop it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from loadtest import children

# Seconds the broker may take from exec to writing its ready file. A legacy pool of
# 100 000 slots takes a few seconds to preheat, so this leaves ample room.
START_TIMEOUT = 60.0

# Seconds between checks for the ready file while the broker starts.
READY_POLL_INTERVAL = 0.05

# Seconds between $SYS publications in configs written here, so the monitor receives a
# new pool capacity within about a second.
SYS_INTERVAL = 1.0


class BrokerStartError(RuntimeError):
    """The bundled broker exited or timed out before it wrote its ready file.

    `reason` is the cause, as a lower-case clause, and `output` is the end of the broker's log.
    """

    def __init__(self, reason: str, output: str) -> None:
        self.reason = reason
        self.output = output
        super().__init__(f"{reason[:1].upper()}{reason[1:]}. Its output:\n{output}")


@dataclass(frozen=True, slots=True)
class BrokerReady:
    """The contents of the broker's ready file."""

    host: str
    port: int
    pid: int
    version: str
    baseline_rss: int
    startup_rss: int
    startup_seconds: float
    pool_capacity: int
    max_pool_size: int
    max_connections: int
    legacy: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BrokerReady:
        return cls(**{name: data[name] for name in cls.__slots__})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def write_config(directory: Path, pool_values: Mapping[str, int], sys_interval: float = SYS_INTERVAL) -> Path:
    """Write a broker config with `pool_values` and a loopback listener on an OS-chosen port."""
    lines = [
        "# Written by loadtest for one run.",
        "[broker]",
        'host = "127.0.0.1"',
        "port = 0",
        f"sys_interval = {sys_interval}",
        "allow_anonymous = true",
        "",
        "[pool]",
        *(f"{name} = {int(value)}" for name, value in pool_values.items()),
        "",
    ]
    path = directory / "broker.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class BundledBroker:
    """The bundled broker (`python -m broker`) started with one config, as a context manager."""

    def __init__(self, config_path: Path, workdir: Path, start_timeout: float = START_TIMEOUT) -> None:
        self.config_path = config_path
        self.ready_path = workdir / "broker-ready.json"
        self.log_path = workdir / "broker.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: BrokerReady | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> BrokerReady:
        """Start the broker and return its ready file; raise BrokerStartError with its output on failure."""
        self.ready_path.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "broker", str(self.config_path),
            "--host", "127.0.0.1", "--port", "0", "--ready-file", str(self.ready_path),
        ]
        self.process = children.spawn(command, self.log_path)
        deadline = time.monotonic() + self.start_timeout

        while True:
            ready = self._read_ready_file()
            if ready is not None:
                self.ready = ready
                return ready
            code = self.process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"the bundled broker exited with code {code} before it was ready (config {self.config_path})",
                    children.log_tail(self.log_path),
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(
                    f"the bundled broker did not write its ready file within {self.start_timeout:g} s "
                    f"(config {self.config_path})",
                    children.log_tail(self.log_path),
                )
            time.sleep(READY_POLL_INTERVAL)

    def stop(self) -> int | None:
        """Stop the broker by PID (SIGTERM, then SIGKILL) and return its exit code."""
        if self.process is None:
            return None
        return children.stop(self.process)

    def output(self) -> str:
        return children.log_tail(self.log_path)

    def _read_ready_file(self) -> BrokerReady | None:
        try:
            data = json.loads(self.ready_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return BrokerReady.from_json(data)

    def __enter__(self) -> BundledBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
