"""Fixtures for black-box tests of the bundled MQTT broker with real clients.

The broker runs as `python -m broker CONFIG --port 0 --ready-file PATH` in a subprocess.
Tests talk to it with paho-mqtt, Debian's mosquitto_pub/mosquitto_sub and raw sockets.

Setting BROKER_TESTS_REFERENCE=mosquitto runs the same tests against Debian's mosquitto
broker instead, which checks that a test expects what a real MQTT 3.1.1 broker does.
Tests marked `bundled_only` are skipped in that mode: they check features mosquitto lacks
(pool, log lines, config errors) or cases where mosquitto 2.0.11 departs from MQTT 3.1.1.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import tomlkit
from paho.mqtt.enums import CallbackAPIVersion

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

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

# Settings every test broker starts from; a module's `broker_settings` overrides them.
BASE_SETTINGS: dict[str, Any] = {
    "broker": {"host": HOST, "port": 0, "sys_interval": 0, "allow_anonymous": True},
    "pool": {"initial_pool_size": 16, "max_pool_size": 64, "max_connections": 256},
    "limits": {"connect_timeout": 2.0, "max_queued_messages": 100, "max_inflight_messages": 20},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bundled_only: the test checks the bundled broker where mosquitto differs "
        f"(skipped when {REFERENCE_VARIABLE}=mosquitto)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REFERENCE_BROKER is None:
        return
    skip = pytest.mark.skip(reason=f"checks the bundled broker only ({REFERENCE_VARIABLE}={REFERENCE_BROKER})")
    for item in items:
        if "bundled_only" in item.keywords:
            item.add_marker(skip)


def merge_settings(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `overrides` applied table by table; None values remove a key."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            for inner_key, inner_value in value.items():
                if inner_value is None:
                    merged[key].pop(inner_key, None)
                else:
                    merged[key][inner_key] = inner_value
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def find_free_port():
    """The free_port function, for module fixtures that need a port before the broker starts."""
    return free_port


# ---------------------------------------------------------------------------
# Broker processes
# ---------------------------------------------------------------------------


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


def mosquitto_config(settings: dict[str, Any], directory: Path, port: int) -> str:
    """Translate test settings into a mosquitto.conf, as far as mosquitto has the same options."""
    values = {key: value for table in settings.values() if isinstance(table, dict) for key, value in table.items()}
    lines = [
        f"listener {port} {HOST}",
        f"allow_anonymous {'true' if values.get('allow_anonymous', True) else 'false'}",
        "persistence false",
        "log_dest stderr",
        "log_type all",
        "allow_duplicate_messages false",
    ]
    if os.geteuid() == 0:
        # Stay root: mosquitto would otherwise switch to its own user, which cannot read tmp_path.
        lines.append("user root")
    interval = values.get("sys_interval", 0)
    lines.append(f"sys_interval {math.ceil(interval)}")
    for key in ("max_queued_messages", "max_inflight_messages", "max_packet_size"):
        if key in values:
            lines.append(f"{key} {values[key]}")

    password_file = values.get("password_file")
    users: list[str] = []
    if password_file:
        path = Path(password_file)
        path = path if path.is_absolute() else directory / path
        lines.append(f"password_file {path}")
        users = [line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line]

    rules = settings.get("acl")
    if rules:
        # mosquitto denies what its ACL file does not grant, so every user gets '#' after
        # its own deny rules; mosquitto's "deny" blocks both directions.
        acl_lines = ["topic readwrite #", "topic read $SYS/#"]
        for user in users:
            acl_lines.append(f"user {user}")
            for rule in rules:
                if rule.get("user", "*") in (user, "*") and not rule.get("allow", True):
                    acl_lines.append(f"topic deny {rule['topic']}")
            acl_lines += ["topic readwrite #", "topic read $SYS/#"]
        acl_path = directory / "mosquitto.acl"
        acl_path.write_text("\n".join(acl_lines) + "\n")
        lines.append(f"acl_file {acl_path}")
    return "\n".join(lines) + "\n"


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


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield launcher
    launcher.stop_all()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


def run_broker_command(args: list[str], timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m broker ARGS` to completion, for commands that exit by themselves."""
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=broker_environment(),
    )


@pytest.fixture(scope="session")
def broker_cli():
    """The run_broker_command function: run `python -m broker ARGS` and return the result."""
    return run_broker_command


@pytest.fixture(scope="module")
def broker_settings() -> dict[str, Any]:
    """Overrides of BASE_SETTINGS for the module's broker; a test module redefines this."""
    return {}


@pytest.fixture(scope="module")
def broker_files(module_launcher: BrokerLauncher) -> Path:
    """Directory of the module's broker config, for files such as a password file."""
    return module_launcher.directory


@pytest.fixture(scope="module")
def mqtt_broker(module_launcher: BrokerLauncher, broker_settings: dict[str, Any]) -> BrokerProcess:
    """One broker shared by the tests of a module."""
    return module_launcher.start(broker_settings)


# ---------------------------------------------------------------------------
# paho-mqtt clients
# ---------------------------------------------------------------------------


class PahoClient:
    """A paho-mqtt 2.x client on its own network thread, with waits for each acknowledgement."""

    def __init__(self, client_id: str, *, clean_session: bool = True, username: str | None = None,
                 password: str | None = None) -> None:
        self.client_id = client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_reason: Any = None
        self.session_present: bool | None = None
        self.disconnect_reason: Any = None
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._acks_changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack_reason = reason_code
        self.session_present = flags.session_present
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnect_reason = reason_code
        self.disconnected.set()

    def _on_message(self, client, userdata, message) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acks_changed:
            self._acks[mid] = list(reason_codes)
            self._acks_changed.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acks_changed:
            self._acks[mid] = list(reason_codes)
            self._acks_changed.notify_all()

    def connect(self, broker: BrokerProcess, *, keepalive: int = 60, expect_success: bool = True) -> PahoClient:
        """Connect and wait for the CONNACK; with `expect_success`, fail unless it was accepted."""
        self.client.connect(broker.host, broker.port, keepalive=keepalive)
        self.client.loop_start()
        assert self.connected.wait(WAIT_TIMEOUT), f"{self.client_id}: no CONNACK within {WAIT_TIMEOUT} s."
        if expect_success:
            assert not self.connack_reason.is_failure, f"{self.client_id}: CONNACK refused with {self.connack_reason}."
        return self

    def _wait_ack(self, mid: int, packet_name: str) -> list[Any]:
        with self._acks_changed:
            arrived = self._acks_changed.wait_for(lambda: mid in self._acks, WAIT_TIMEOUT)
            assert arrived, f"{self.client_id}: no {packet_name} for message id {mid} within {WAIT_TIMEOUT} s."
            return self._acks.pop(mid)

    def subscribe(self, topic_filter: str | list[tuple[str, int]], qos: int = 0) -> list[Any]:
        """Subscribe, wait for the SUBACK and return its reason codes (ReasonCode objects)."""
        if isinstance(topic_filter, str):
            result, mid = self.client.subscribe(topic_filter, qos)
        else:
            result, mid = self.client.subscribe(topic_filter)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: SUBSCRIBE not sent ({result})."
        return self._wait_ack(mid, "SUBACK")

    def unsubscribe(self, topic_filter: str) -> None:
        result, mid = self.client.unsubscribe(topic_filter)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: UNSUBSCRIBE not sent ({result})."
        self._wait_ack(mid, "UNSUBACK")

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False) -> int:
        """Publish and wait until the QoS flow completes (for QoS 0, until it is written)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT_TIMEOUT)
        assert info.is_published(), f"{self.client_id}: PUBLISH to {topic!r} (QoS {qos}) not acknowledged within {WAIT_TIMEOUT} s."
        return info.mid

    def next_message(self, timeout: float = WAIT_TIMEOUT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message arrived within {timeout} s.") from None

    def collect(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[mqtt.MQTTMessage]:
        """Return the next `count` messages, failing if they do not all arrive in `timeout` seconds."""
        deadline = time.monotonic() + timeout
        received = []
        while len(received) < count:
            remaining = deadline - time.monotonic()
            try:
                received.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id}: {len(received)} of {count} messages arrived within {timeout} s: "
                    f"{[(m.topic, m.payload) for m in received][:10]}"
                ) from None
        return received

    def messages_until(self, topic: str, timeout: float = WAIT_TIMEOUT) -> list[mqtt.MQTTMessage]:
        """Return every message received before the first one on `topic` (a sentinel)."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            message = self.next_message(max(deadline - time.monotonic(), 0.001))
            if message.topic == topic:
                return before
            before.append(message)

    def drain(self) -> list[mqtt.MQTTMessage]:
        drained = []
        while True:
            try:
                drained.append(self.messages.get_nowait())
            except queue.Empty:
                return drained

    def disconnect(self) -> None:
        """Send DISCONNECT, wait for the network thread to see it and stop the thread."""
        if self.connected.is_set() and not self.disconnected.is_set():
            self.client.disconnect()
            self.disconnected.wait(WAIT_TIMEOUT)
        self.client.loop_stop()


class PahoFactory:
    """Create paho clients with unique ids and disconnect them all at teardown."""

    def __init__(self, name: str) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9]", "-", name)[-40:]
        self.clients: list[PahoClient] = []
        self._count = 0

    def unique(self, label: str = "c") -> str:
        self._count += 1
        return f"{self.prefix}-{label}-{self._count}"

    def create(self, client_id: str | None = None, **options: Any) -> PahoClient:
        client = PahoClient(self.unique() if client_id is None else client_id, **options)
        self.clients.append(client)
        return client

    def connect(self, broker: BrokerProcess, client_id: str | None = None, *, keepalive: int = 60,
                expect_success: bool = True, **options: Any) -> PahoClient:
        return self.create(client_id, **options).connect(broker, keepalive=keepalive, expect_success=expect_success)

    def close_all(self) -> None:
        for client in self.clients:
            client.disconnect()


@pytest.fixture
def paho(request: pytest.FixtureRequest) -> Iterator[PahoFactory]:
    factory = PahoFactory(request.node.name)
    yield factory
    factory.close_all()


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic prefix no other test uses."""
    return "t/" + re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)


# ---------------------------------------------------------------------------
# Debian's mosquitto_pub and mosquitto_sub
# ---------------------------------------------------------------------------


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


@pytest.fixture
def mosquitto() -> Iterator[MosquittoTools]:
    for tool in ("mosquitto_pub", "mosquitto_sub"):
        assert shutil.which(tool), f"{tool} is missing; install the Debian package mosquitto-clients."
    tools = MosquittoTools()
    yield tools
    tools.stop_all()


# ---------------------------------------------------------------------------
# Raw sockets speaking MQTT 3.1.1 byte by byte
# ---------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


def encode_remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def encode_string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def encode_packet(packet_type: int, flags: int, body: bytes) -> bytes:
    return bytes([packet_type << 4 | flags]) + encode_remaining_length(len(body)) + body


def encode_connect(client_id: str | bytes, *, clean_session: bool = True, keepalive: int = 60,
                   username: str | None = None, password: str | bytes | None = None,
                   will: tuple[str, bytes, int, bool] | None = None,
                   protocol_name: str = "MQTT", protocol_level: int = 4) -> bytes:
    """Encode a CONNECT; `will` is (topic, payload, qos, retain)."""
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id)
    if will is not None:
        will_topic, will_payload, will_qos, will_retain = will
        flags |= 0x04 | will_qos << 3 | (0x20 if will_retain else 0)
        payload += encode_string(will_topic) + encode_string(will_payload)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    header = encode_string(protocol_name) + bytes([protocol_level, flags]) + struct.pack("!H", keepalive)
    return encode_packet(CONNECT, 0, header + payload)


def encode_publish(topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int | None = None,
                   retain: bool = False, dup: bool = False) -> bytes:
    flags = qos << 1
    if dup:
        flags |= 0x08
    if retain:
        flags |= 0x01
    body = encode_string(topic)
    if qos:
        body += struct.pack("!H", packet_id if packet_id is not None else 1)
    return encode_packet(PUBLISH, flags, body + payload)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id)
    for topic_filter, qos in filters:
        body += encode_string(topic_filter) + bytes([qos])
    return encode_packet(SUBSCRIBE, 0x02, body)


def encode_ack(packet_type: int, packet_id: int) -> bytes:
    """Encode PUBACK, PUBREC, PUBREL (with its required flags 0b0010) or PUBCOMP."""
    return encode_packet(packet_type, 0x02 if packet_type == PUBREL else 0, struct.pack("!H", packet_id))


@dataclass
class Packet:
    """One MQTT control packet read from a raw socket."""

    packet_type: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        """Packet identifier of an acknowledgement or SUBACK, or of a QoS 1/2 PUBLISH."""
        if self.packet_type == PUBLISH:
            topic_length = struct.unpack_from("!H", self.body)[0]
            return struct.unpack_from("!H", self.body, 2 + topic_length)[0]
        return struct.unpack_from("!H", self.body)[0]

    @property
    def qos(self) -> int:
        return self.flags >> 1 & 0x03

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def topic(self) -> str:
        topic_length = struct.unpack_from("!H", self.body)[0]
        return self.body[2:2 + topic_length].decode("utf-8")

    @property
    def payload(self) -> bytes:
        topic_length = struct.unpack_from("!H", self.body)[0]
        start = 2 + topic_length + (2 if self.qos else 0)
        return self.body[start:]


class RawClient:
    """A TCP socket to the broker that sends the test's bytes unchanged and reads MQTT packets."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.socket = socket.create_connection((broker.host, broker.port), timeout=WAIT_TIMEOUT)
        self._buffer = b""

    @property
    def local_port(self) -> int:
        return self.socket.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def _receive(self, count: int, deadline: float) -> bytes:
        while len(self._buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Fewer than {count} bytes arrived in time; buffered {self._buffer!r}.")
            self.socket.settimeout(remaining)
            chunk = self.socket.recv(65536)
            if not chunk:
                raise ConnectionError(f"The broker closed the connection; buffered {self._buffer!r}.")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_packet(self, timeout: float = WAIT_TIMEOUT) -> Packet:
        """Read one packet, raising ConnectionError on close and TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        first = self._receive(1, deadline)[0]
        length, multiplier = 0, 1
        while True:
            digit = self._receive(1, deadline)[0]
            length += (digit & 0x7F) * multiplier
            multiplier *= 128
            if not digit & 0x80:
                break
        return Packet(first >> 4, first & 0x0F, self._receive(length, deadline))

    def expect(self, packet_type: int, timeout: float = WAIT_TIMEOUT) -> Packet:
        packet = self.read_packet(timeout)
        assert packet.packet_type == packet_type, f"Expected packet type {packet_type}, got {packet}."
        return packet

    def connect(self, client_id: str | bytes, **options: Any) -> Packet:
        """Send CONNECT and return the CONNACK packet (body: session present, return code)."""
        self.send(encode_connect(client_id, **options))
        return self.expect(CONNACK)

    def subscribe(self, packet_id: int, filters: list[tuple[str, int]]) -> list[int]:
        """Send SUBSCRIBE and return the SUBACK return codes."""
        self.send(encode_subscribe(packet_id, filters))
        suback = self.expect(SUBACK)
        assert suback.packet_id == packet_id
        return list(suback.body[2:])

    def publish(self, topic: str | bytes, payload: bytes, **options: Any) -> None:
        self.send(encode_publish(topic, payload, **options))

    def wait_closed(self, timeout: float = WAIT_TIMEOUT) -> bool:
        """Wait until the broker closes the connection; return False if it is still open after `timeout`.

        Packets that arrive meanwhile are discarded.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.socket], [], [], remaining)
            if not readable:
                return False
            try:
                if not self.socket.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True

    def close(self) -> None:
        self.socket.close()


class RawFactory:
    """Open raw MQTT sockets and close them all at teardown."""

    # Packet type numbers, so tests need not import them.
    CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP
    SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
    PINGREQ, PINGRESP, DISCONNECT = PINGREQ, PINGRESP, DISCONNECT

    encode_connect = staticmethod(encode_connect)
    encode_publish = staticmethod(encode_publish)
    encode_subscribe = staticmethod(encode_subscribe)
    encode_ack = staticmethod(encode_ack)
    encode_packet = staticmethod(encode_packet)
    encode_remaining_length = staticmethod(encode_remaining_length)

    def __init__(self) -> None:
        self.clients: list[RawClient] = []

    def open(self, broker: BrokerProcess) -> RawClient:
        client = RawClient(broker)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def raw() -> Iterator[RawFactory]:
    factory = RawFactory()
    yield factory
    factory.close_all()
