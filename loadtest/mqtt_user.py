"""The locust User with one paho-mqtt connection, and the status report of each worker process.

The master passes the MQTT settings to its workers inside locust's own spawn message, as
`mqtt_*` attributes of `environment.parsed_options`, so a worker started by hand on another
machine (`locust --worker -f this_file.py --master-host ...`) needs no other arguments.
Every worker sends a `loadtest_status` message to the master twice a second with its
connected count, its failures by reason and the connect latencies measured since the last
message. The master sums them, because locust's own stats arrive only every 3 s.
"""

from __future__ import annotations

import errno
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import User, events, task
from locust.runners import WorkerRunner
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from loadtest.clientloop import ClientLoop
from loadtest.limits import raise_open_file_limit


# Custom message a worker sends to the master with its connection counts.
STATUS_MESSAGE = "loadtest_status"

# Seconds between status messages; the master's checkpoints settle on these counts.
STATUS_INTERVAL = 0.5

# Seconds a user waits before it tries again after a failed connect or a lost connection.
RETRY_DELAY = 1.0

# Seconds between checks of an idle connection when the user publishes nothing.
IDLE_INTERVAL = 1.0

# Keepalive sent in CONNECT; long enough that PINGREQ traffic stays negligible.
KEEPALIVE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class UserSettings:
    """Settings of every MQTT user in a run, from the master's command line."""

    host: str = "127.0.0.1"
    port: int = 1883
    qos: int = 0
    payload_size: int = 16
    publish_interval: float = 0.0
    source_addresses: tuple[str, ...] = ()
    connect_timeout: float = 10.0

    def to_options(self) -> dict[str, Any]:
        """Return the settings as `mqtt_*` option names, the form locust sends to workers."""
        return {
            "mqtt_host": self.host,
            "mqtt_port": self.port,
            "mqtt_qos": self.qos,
            "mqtt_payload_size": self.payload_size,
            "mqtt_publish_interval": self.publish_interval,
            "mqtt_source_addresses": ",".join(self.source_addresses),
            "mqtt_connect_timeout": self.connect_timeout,
        }

    @classmethod
    def from_options(cls, options: object) -> UserSettings:
        """Read the `mqtt_*` attributes of locust's parsed options, keeping defaults for missing ones."""
        default = cls()
        addresses = getattr(options, "mqtt_source_addresses", "") or ""
        return cls(
            host=getattr(options, "mqtt_host", default.host),
            port=int(getattr(options, "mqtt_port", default.port)),
            qos=int(getattr(options, "mqtt_qos", default.qos)),
            payload_size=int(getattr(options, "mqtt_payload_size", default.payload_size)),
            publish_interval=float(getattr(options, "mqtt_publish_interval", default.publish_interval)),
            source_addresses=tuple(a for a in addresses.split(",") if a),
            connect_timeout=float(getattr(options, "mqtt_connect_timeout", default.connect_timeout)),
        )


@dataclass
class ProcessStatus:
    """Counters of one worker process, shared by all its users."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    connected: int = 0
    connecting: int = 0
    published: int = 0
    received: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    users_started: int = 0

    def drain(self) -> dict[str, Any]:
        """Return a status message body and forget the latencies it carries."""
        latencies, self.latencies_ms = self.latencies_ms, []
        return {
            "worker": self.tag,
            "connected": self.connected,
            "connecting": self.connecting,
            "published": self.published,
            "received": self.received,
            "failures": dict(self.failures),
            "latencies_ms": latencies,
        }


STATUS = ProcessStatus()
LOOP = ClientLoop()


def describe_connect_error(error: OSError) -> str:
    """Name the reason a TCP connect failed, in the words the report groups failures by."""
    if error.errno == errno.EADDRNOTAVAIL:
        return "ports exhausted (EADDRNOTAVAIL): add --source-addresses"
    if error.errno in (errno.EMFILE, errno.ENFILE):
        return "open-file limit reached (EMFILE): raise ulimit -n or add workers"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "TCP connect timed out"
    return f"connect failed: {error.strerror or error}"


class ConnectFailed(Exception):
    """A connection attempt that did not end in a successful CONNACK."""


class MqttUser(User):
    """A simulated device: one MQTT connection, subscribed to its own topic."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.settings = UserSettings.from_options(environment.parsed_options)
        STATUS.users_started += 1
        self.number = STATUS.users_started
        self.client_id = f"loadtest-{STATUS.tag}-{self.number}"
        self.topic = f"loadtest/{self.client_id}"
        self.payload = b"x" * self.settings.payload_size
        self.client: Client | None = None
        self.connected = False
        self.stopping = False
        self.last_attempt_failed = False
        self.connack: AsyncResult = AsyncResult()

    def wait_time(self) -> float:
        if not self.connected:
            return RETRY_DELAY if self.last_attempt_failed else 0.0
        return self.settings.publish_interval or IDLE_INTERVAL

    @task
    def hold_connection(self) -> None:
        if not self.connected:
            self.connect()
        elif self.settings.publish_interval > 0:
            self.client.publish(self.topic, self.payload, qos=self.settings.qos)
            STATUS.published += 1

    def on_stop(self) -> None:
        self.stopping = True
        if self.client is None:
            return
        if self.connected:
            self.client.disconnect()
        else:
            LOOP.discard(self.client)

    def connect(self) -> None:
        """Open the connection and wait for CONNACK, recording the latency or the failure."""
        if self.client is not None:
            LOOP.discard(self.client)
        self.client = self._new_client()
        self.connack = AsyncResult()
        addresses = self.settings.source_addresses
        bind_address = addresses[self.number % len(addresses)] if addresses else ""

        STATUS.connecting += 1
        started = time.perf_counter()
        try:
            self.client.connect(self.settings.host, self.settings.port, KEEPALIVE_SECONDS, bind_address=bind_address)
            self.connack.get(timeout=self.settings.connect_timeout)
        except OSError as error:
            self._record_failure(started, describe_connect_error(error))
            return
        except gevent.Timeout:
            self._record_failure(started, f"CONNACK not received within {self.settings.connect_timeout:g} s")
            return
        except ConnectFailed as error:
            self._record_failure(started, str(error))
            return
        finally:
            STATUS.connecting -= 1

        elapsed_ms = (time.perf_counter() - started) * 1000
        self.connected = True
        self.last_attempt_failed = False
        STATUS.connected += 1
        STATUS.latencies_ms.append(elapsed_ms)
        self.environment.events.request.fire(
            request_type="MQTT", name="connect", response_time=elapsed_ms, response_length=0, exception=None, context={}
        )
        self.client.subscribe(self.topic, qos=self.settings.qos)

    def _new_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        LOOP.attach(client)
        return client

    def _record_failure(self, started: float, reason: str) -> None:
        self.last_attempt_failed = True
        STATUS.failures[reason] += 1
        if self.client is not None:
            LOOP.discard(self.client)
            self.client = None
        self.environment.events.request.fire(
            request_type="MQTT",
            name="connect",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=ConnectFailed(reason),
            context={},
        )

    def _on_connect(
        self, client: Client, userdata: object, flags: ConnectFlags, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        if reason_code.is_failure:
            self.connack.set_exception(ConnectFailed(f"CONNACK rejected: {reason_code}"))
        else:
            self.connack.set(reason_code)

    def _on_disconnect(
        self, client: Client, userdata: object, flags: DisconnectFlags, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        if not self.connack.ready():
            self.connack.set_exception(ConnectFailed("connection closed before CONNACK"))
        if self.connected:
            self.connected = False
            STATUS.connected -= 1
            if not self.stopping:
                self.last_attempt_failed = True
                STATUS.failures[f"connection lost: {reason_code}"] += 1

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        STATUS.received += 1


def report_status(runner: WorkerRunner) -> None:
    """Send this process's counters to the master every STATUS_INTERVAL seconds, until killed."""
    while True:
        runner.send_message(STATUS_MESSAGE, STATUS.drain())
        gevent.sleep(STATUS_INTERVAL)


@events.init.add_listener
def _start_status_reports(environment: Any, **kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        raise_open_file_limit()
        environment.runner.greenlet.spawn(report_status, environment.runner)
