"""A monitor client in the master that follows the broker's $SYS topics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

CAPACITY_TOPIC = "$SYS/broker/pool/capacity"
EXPANSIONS_TOPIC = "$SYS/broker/pool/expansions"
CONNECTED_TOPIC = "$SYS/broker/clients/connected"
SYS_TOPICS = (CAPACITY_TOPIC, EXPANSIONS_TOPIC, CONNECTED_TOPIC)

# Seconds to wait for CONNACK before calling the broker unreachable.
PROBE_TIMEOUT = 5.0


class BrokerUnreachable(ConnectionError):
    """The monitor client could not connect to the broker. `reason` is the cause, as a lower-case clause."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason[:1].upper()}{reason[1:]}.")


class SysMonitor:
    """Subscribe to the pool and client counters on $SYS and keep their latest values.

    `on_capacity(capacity)` runs whenever a new pool capacity arrives. Brokers without a
    pool (mosquitto, EMQX) never publish one, so `pool_capacity` stays None there.
    """

    def __init__(self, host: str, port: int, on_capacity: Callable[[int], None] | None = None) -> None:
        self.host = host
        self.port = port
        self.on_capacity = on_capacity
        self.pool_capacity: int | None = None
        self.pool_expansions: int | None = None
        self.clients_connected: int | None = None
        self.clients_connected_max: int | None = None
        # time.monotonic() of the latest message on each $SYS topic.
        self.updated: dict[str, float] = {}
        self._update = threading.Condition()
        self._connack = threading.Event()
        self._refusal: str | None = None
        self.client = Client(
            CallbackAPIVersion.VERSION2, client_id="loadtest-monitor", protocol=MQTTProtocolVersion.MQTTv311
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def connect(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Connect and subscribe, raising BrokerUnreachable with the reason when that fails."""
        where = f"{self.host}:{self.port}"
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as error:
            detail = error.strerror or str(error)
            raise BrokerUnreachable(f"the broker at {where} is unreachable: {detail[:1].lower()}{detail[1:]}") from None
        self.client.loop_start()
        if not self._connack.wait(timeout):
            self.close()
            raise BrokerUnreachable(f"the broker at {where} accepted the TCP connection but sent no CONNACK within {timeout:g} s")
        if self._refusal is not None:
            self.close()
            refusal = f"{self._refusal[:1].lower()}{self._refusal[1:]}"
            raise BrokerUnreachable(f"the broker at {where} rejected the monitor connection: {refusal}")
        self.client.subscribe([(topic, 0) for topic in SYS_TOPICS])

    def wait_capacity_after(self, moment: float, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a pool capacity published after time.monotonic() `moment`.

        Return False at once for a broker that has published no pool capacity so far.
        """
        deadline = time.monotonic() + timeout
        with self._update:
            while CAPACITY_TOPIC in self.updated and self.updated[CAPACITY_TOPIC] <= moment:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._update.wait(remaining)
        return CAPACITY_TOPIC in self.updated

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: Client, userdata: object, flags: ConnectFlags, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        if reason_code.is_failure:
            self._refusal = str(reason_code)
        self._connack.set()

    def _on_disconnect(
        self, client: Client, userdata: object, flags: DisconnectFlags, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        if not self._connack.is_set():
            self._refusal = f"the connection closed before CONNACK ({reason_code})"
            self._connack.set()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        try:
            value = int(message.payload.split()[0])
        except (ValueError, IndexError):
            return
        if message.topic == CAPACITY_TOPIC:
            changed = value != self.pool_capacity
            self.pool_capacity = value
            if changed and self.on_capacity is not None:
                self.on_capacity(value)
        elif message.topic == EXPANSIONS_TOPIC:
            self.pool_expansions = value
        elif message.topic == CONNECTED_TOPIC:
            self.clients_connected = value
            self.clients_connected_max = max(value, self.clients_connected_max or 0)
        with self._update:
            self.updated[message.topic] = time.monotonic()
            self._update.notify_all()
