"""paho-mqtt clients for black-box tests, each with waits for its acknowledgements."""

from __future__ import annotations

import queue
import re
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from brokerprocess import WAIT_TIMEOUT, BrokerProcess
from paho.mqtt.enums import CallbackAPIVersion


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
