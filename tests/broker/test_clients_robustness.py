"""Misbehaving sockets are disconnected and logged while a well-behaved client carries on."""

from __future__ import annotations

import threading
import time

import pytest
from rawclient import connect_packet, remaining_length

pytestmark = pytest.mark.timeout(30)

CONNECT_TIMEOUT = 0.5
MAX_PACKET_SIZE = 65536
# Round trips the bystander completes before the attack starts and after it ends.
ROUNDS_AROUND_ATTACK = 3
# Bounds of the bystander's loop, whichever comes first.
BYSTANDER_MAX_ROUNDS = 20_000
BYSTANDER_MAX_SECONDS = 20.0
ROUND_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def broker_settings():
    return {"limits": {"connect_timeout": CONNECT_TIMEOUT, "max_packet_size": MAX_PACKET_SIZE}}


class Bystander:
    """A paho client that publishes QoS 1 messages to itself, one round trip at a time."""

    def __init__(self, client, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.published: list[bytes] = []
        self.received: list[bytes] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._progress = threading.Condition()
        client.subscribe(topic, qos=1)
        self._thread = threading.Thread(target=self._run, name=f"bystander {topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + BYSTANDER_MAX_SECONDS
        try:
            for index in range(BYSTANDER_MAX_ROUNDS):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                payload = str(index).encode()
                info = self.client.client.publish(self.topic, payload, qos=1)
                self.published.append(payload)
                info.wait_for_publish(ROUND_TIMEOUT)
                if not info.is_published():
                    raise AssertionError(f"PUBLISH {index} was not acknowledged within {ROUND_TIMEOUT} s.")
                message = self.client.next_message(ROUND_TIMEOUT)
                with self._progress:
                    self.received.append(message.payload)
                    self._progress.notify_all()
        except BaseException as error:  # noqa: BLE001 - reported by stop() in the test thread
            self.error = error
            with self._progress:
                self._progress.notify_all()

    def wait_rounds(self, count: int) -> None:
        """Wait until `count` round trips have completed."""
        with self._progress:
            done = self._progress.wait_for(lambda: len(self.received) >= count or self.error, ROUND_TIMEOUT)
        assert self.error is None, f"The bystander failed: {self.error!r}"
        assert done, f"The bystander completed {len(self.received)} of {count} round trips in {ROUND_TIMEOUT} s."

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop the loop, wait for its thread and raise what went wrong in it."""
        self._stop.set()
        self._thread.join(ROUND_TIMEOUT * 2)
        assert not self._thread.is_alive(), "The bystander thread did not stop."
        assert self.error is None, f"The bystander failed: {self.error!r}"


@pytest.fixture
def bystander(mqtt_broker, paho, topic):
    observer = Bystander(paho.connect(mqtt_broker), f"{topic}/bystander")
    observer.wait_rounds(ROUNDS_AROUND_ATTACK)
    yield observer
    observer.request_stop()


def finish_attack(bystander: Bystander, broker, peer_port: int, reason_pattern: str) -> None:
    """Check the log and that the bystander kept every message through the attack."""
    broker.wait_for_log(rf" WARNING .*127\.0\.0\.1:{peer_port}\b.*{reason_pattern}")
    bystander.wait_rounds(len(bystander.received) + ROUNDS_AROUND_ATTACK)
    bystander.stop()
    assert bystander.received == bystander.published[:len(bystander.received)]
    assert len(bystander.published) - len(bystander.received) <= 1


@pytest.mark.bundled_only
@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x00\xde\xad\xbe\xef", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"\x10\xff\xff\xff\xff\xff"],
    ids=["reserved-type", "http-request", "five-byte-length"],
)
def test_garbage_first_bytes_are_disconnected(mqtt_broker, raw, bystander, garbage):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port

    attacker.send(garbage)

    assert attacker.wait_closed()
    finish_attack(bystander, mqtt_broker, port, r"(?i:packet|type|length|flags|CONNECT|invalid|malformed|reserved)")


@pytest.mark.bundled_only
def test_garbage_after_connect_is_disconnected(mqtt_broker, raw, bystander):
    attacker = raw.open(mqtt_broker)
    attacker.connect("raw-garbage-after-connect")
    port = attacker.local_port

    attacker.send(b"\xf0\x03abc")

    assert attacker.wait_closed()
    finish_attack(bystander, mqtt_broker, port, r"(?i:packet|type|reserved|invalid|malformed)")


@pytest.mark.bundled_only
def test_truncated_packet_then_close_is_logged(mqtt_broker, raw, bystander):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port
    connect = connect_packet("raw-truncated-close")

    attacker.send(connect[: len(connect) // 2])
    attacker.close()

    finish_attack(bystander, mqtt_broker, port, r"(?i:middle|truncated|incomplete|partial|before)")


@pytest.mark.bundled_only
def test_truncated_packet_then_silence_times_out(mqtt_broker, raw, bystander):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port
    connect = connect_packet("raw-truncated-silent")

    attacker.send(connect[: len(connect) // 2])

    assert attacker.wait_closed(CONNECT_TIMEOUT + 2.5)
    finish_attack(bystander, mqtt_broker, port, r"(?i:no CONNECT|timed out|timeout|within)")


@pytest.mark.bundled_only
@pytest.mark.parametrize("length", [MAX_PACKET_SIZE + 1, 268_435_455])
def test_oversized_remaining_length_is_disconnected(mqtt_broker, raw, bystander, length):
    attacker = raw.open(mqtt_broker)
    attacker.connect(f"raw-oversized-{length}")
    port = attacker.local_port

    # Only the fixed header: the broker must give up without waiting for the body.
    attacker.send(bytes([0x30]) + remaining_length(length))

    assert attacker.wait_closed()
    finish_attack(bystander, mqtt_broker, port, r"(?i:max_packet_size|too large|exceeds|limit|larger)")


@pytest.mark.bundled_only
def test_oversized_connect_is_disconnected(mqtt_broker, raw, bystander):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port

    attacker.send(bytes([0x10]) + remaining_length(268_435_455))

    assert attacker.wait_closed()
    finish_attack(bystander, mqtt_broker, port, r"(?i:max_packet_size|too large|exceeds|limit|larger)")


@pytest.mark.bundled_only
@pytest.mark.parametrize(
    "first_packet",
    [b"\xc0\x00", b"\x30\x07\x00\x03a/bhi", b"\x82\x08\x00\x01\x00\x03a/b\x00"],
    ids=["pingreq", "publish", "subscribe"],
)
def test_first_packet_other_than_connect_is_disconnected(mqtt_broker, raw, bystander, first_packet):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port

    attacker.send(first_packet)

    assert attacker.wait_closed()
    finish_attack(bystander, mqtt_broker, port, r"CONNECT")


@pytest.mark.bundled_only
def test_silent_socket_is_closed_after_connect_timeout(mqtt_broker, raw, bystander):
    attacker = raw.open(mqtt_broker)
    port = attacker.local_port

    assert attacker.wait_closed(CONNECT_TIMEOUT + 2.5)
    finish_attack(bystander, mqtt_broker, port, r"(?i:no CONNECT|timed out|timeout|within)")


def test_misbehaving_sockets_are_closed(mqtt_broker, raw, paho, topic):
    """The same attacks without log checks, so that the reference broker can run them too."""
    survivor = paho.connect(mqtt_broker)
    survivor.subscribe(topic, qos=1)
    attacks = [b"\x00\x00\xde\xad", b"\xc0\x00", b"\x10" + remaining_length(268_435_455)]

    for data in attacks:
        attacker = raw.open(mqtt_broker)
        attacker.send(data)
        assert attacker.wait_closed(), f"The broker kept the connection open after {data!r}."
        survivor.publish(topic, data, qos=1)
        assert survivor.next_message().payload == data
