"""Start and stop the brokers under test on free loopback ports, each as one process.

Every broker runs in the foreground as a child process whose PID is the broker itself,
so psutil reads the broker's own RSS. Each one logs to a file in its work folder, and
readiness is a line in that log (mosquitto, amqtt) or the ready file (bundled broker).
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

import psutil

HOST = "127.0.0.1"

REPO_ROOT = Path(__file__).resolve().parents[1]

MOSQUITTO = Path("/usr/sbin/mosquitto")
AMQTT = Path("/tmp/amqtt-venv/bin/amqtt")

# Seconds a broker may take from exec to listening; the legacy bundled broker preheats
# 100 000 slots at startup, which is the slowest case measured.
START_TIMEOUT = 60.0

# Seconds between SIGTERM and SIGKILL when stopping a broker.
STOP_TIMEOUT = 10.0

# Interval between looks at a log or ready file while waiting for a broker to listen.
POLL_INTERVAL = 0.02

# Environment variable set to 1 for the bundled broker's asyncio runs. The broker keeps
# asyncio's own event loop only if it reads this variable; start_broker() checks which loop it loaded.
NO_UVLOOP_VARIABLE = "POOLMIGRATE_NO_UVLOOP"

MOSQUITTO_READY = re.compile(r"mosquitto version \S+ running")
AMQTT_READY = re.compile(r"Listener 'default' bind to")


class BrokerStartError(RuntimeError):
    """A broker did not start listening; the message quotes the end of its log."""


@dataclass
class RunningBroker:
    """A broker process listening on HOST:port."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    # The bundled broker's ready file, parsed; empty for other brokers.
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host(self) -> str:
        return HOST

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def uses_uvloop(self) -> bool:
        """Tell whether uvloop's extension module is mapped into the broker process."""
        maps = psutil.Process(self.pid).memory_maps(grouped=True)
        return any("uvloop" in region.path for region in maps)

    def stop(self) -> int:
        """Stop the broker by PID with SIGTERM, then SIGKILL after STOP_TIMEOUT; return its exit code."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                return self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        return self.process.wait(STOP_TIMEOUT)

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port() -> int:
    """Return a TCP port on HOST that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def spawn(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `argv` with stdout and stderr going to `workdir`/`name`.log."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
        )
    return process, log_path


def wait_until_listening(
    name: str, process: subprocess.Popen[bytes], log_path: Path, ready: re.Pattern[str]
) -> None:
    """Wait until the log at `log_path` has a line matching `ready`."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready.search(log_path.read_text(encoding="utf-8", errors="replace")):
            return
        if process.poll() is not None:
            raise BrokerStartError(
                f"{name} exited with code {process.returncode} before listening. Log {log_path}:\n"
                + log_tail(log_path)
            )
        time.sleep(POLL_INTERVAL)
    stop_process(process)
    raise BrokerStartError(
        f"{name} did not log {ready.pattern!r} within {START_TIMEOUT} s. Log {log_path}:\n" + log_tail(log_path)
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


def check_executable(path: Path, install_hint: str) -> None:
    if not os.access(path, os.X_OK):
        raise BrokerStartError(f"{path} is missing or not executable; {install_hint}.")


def start_mosquitto(workdir: Path, executable: Path = MOSQUITTO) -> RunningBroker:
    """Start mosquitto with anonymous access and no connection limit on a free port."""
    check_executable(executable, "install the Debian package mosquitto")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\nmax_connections -1\nlog_dest stderr\n",
        encoding="utf-8",
    )
    process, log_path = spawn("mosquitto", [str(executable), "-c", str(conf)], workdir)
    wait_until_listening("mosquitto", process, log_path, MOSQUITTO_READY)
    return RunningBroker("mosquitto", process, port, log_path)


def start_amqtt(workdir: Path, executable: Path = AMQTT) -> RunningBroker:
    """Start amqtt with anonymous access, no connection limit and no $SYS plugin on a free port."""
    check_executable(
        executable,
        "create it with: python -m venv /tmp/amqtt-venv && /tmp/amqtt-venv/bin/pip install amqtt",
    )
    port = free_port()
    conf = workdir / "amqtt.yaml"
    conf.write_text(
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: {HOST}:{port}\n"
        "    max_connections: -1\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n",
        encoding="utf-8",
    )
    process, log_path = spawn("amqtt", [str(executable), "-c", str(conf)], workdir)
    wait_until_listening("amqtt", process, log_path, AMQTT_READY)
    return RunningBroker("amqtt", process, port, log_path)


def start_bundled(
    workdir: Path,
    config_text: str,
    *,
    name: str = "bundled",
    python: str = sys.executable,
    uvloop: bool = True,
) -> RunningBroker:
    """Start `python -m broker` with `config_text` as its config and wait for its ready file.

    With `uvloop` false the environment carries NO_UVLOOP_VARIABLE=1; the caller checks
    `uses_uvloop()` because only the broker decides which loop it runs.
    """
    config = workdir / f"{name}.toml"
    config.write_text(config_text, encoding="utf-8")
    ready_file = workdir / f"{name}.ready.json"
    ready_file.unlink(missing_ok=True)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop(NO_UVLOOP_VARIABLE, None)
    if not uvloop:
        env[NO_UVLOOP_VARIABLE] = "1"

    argv = [python, "-m", "broker", str(config), "--host", HOST, "--port", "0", "--ready-file", str(ready_file)]
    process, log_path = spawn(name, argv, workdir, env)

    deadline = time.monotonic() + START_TIMEOUT
    while not ready_file.exists():
        if process.poll() is not None:
            raise BrokerStartError(
                f"{name} exited with code {process.returncode} before writing {ready_file}. "
                f"Log {log_path}:\n" + log_tail(log_path)
            )
        if time.monotonic() > deadline:
            stop_process(process)
            raise BrokerStartError(
                f"{name} wrote no ready file {ready_file} within {START_TIMEOUT} s. Log {log_path}:\n"
                + log_tail(log_path)
            )
        time.sleep(POLL_INTERVAL)

    ready = json.loads(ready_file.read_text(encoding="utf-8"))
    if ready.get("pid") != process.pid:
        stop_process(process)
        raise BrokerStartError(
            f"{name} ready file {ready_file} names PID {ready.get('pid')}, but the process started "
            f"was PID {process.pid}; RSS would be read from the wrong process."
        )
    return RunningBroker(name, process, int(ready["port"]), log_path, ready)
