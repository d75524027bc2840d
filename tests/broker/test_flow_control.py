"""Back-pressure: publishers wait while a connected subscriber is congested, within a time bound.

Publishers here are raw sockets that write a whole burst in one call, so the broker reads
far more PUBLISH packets at once than a subscriber's queue (max_queued_messages) holds.
"""

from __future__ import annotations

import re
import socket

import pytest
from rawclient import PINGREQ, PINGRESP, PUBACK, PUBLISH, control_packet, publish_packet

from broker.server import STALLED_SUBSCRIBER_SECONDS

pytestmark = [pytest.mark.timeout(90), pytest.mark.bundled_only]

MAX_QUEUED_MESSAGES = 50
MAX_INFLIGHT_MESSAGES = 20
# Forty times the queue, so a broker without back-pressure would drop most of the burst.
BURST_SIZE = 2000
# Seconds for a whole burst to pass through the broker. It takes well under a second on
# an idle machine, so this bound only turns a hang into a failure.
BURST_TIMEOUT = 30.0
# Seconds within which a held-back publisher must be read again: the stall timeout plus
# a margin that only turns a hang into a failure.
RELEASE_TIMEOUT = STALLED_SUBSCRIBER_SECONDS + 10.0
# Receive buffer of the QoS 0 subscriber that reads nothing. Setting it turns off Linux's
# autotuning, which could otherwise grow the buffer to tcp_rmem's max (32 MiB here).
SUBSCRIBER_RECEIVE_BUFFER = 64 * 1024
# QoS 0 bytes offered to that subscriber: 13 MB, more than twice what its receive buffer,
# the broker's send buffer (tcp_wmem's default max is 4 MiB) and outgoing_high_water
# (1 MiB) contain together.
LARGE_PAYLOAD_SIZE = 64 * 1024
LARGE_PAYLOAD_COUNT = 200


@pytest.fixture(scope="module")
def broker_settings():
    return {"limits": {"max_queued_messages": MAX_QUEUED_MESSAGES, "max_inflight_messages": MAX_INFLIGHT_MESSAGES}}


def burst(topic: str, count: int, *, first: int = 0, qos: int = 1) -> bytes:
    """Encode `count` PUBLISH packets whose payloads are their numbers, from `first` on."""
    return b"".join(
        publish_packet(topic, str(number).encode(), qos=qos, packet_id=number + 1)
        for number in range(first, first + count)
    )


def expect_pubacks(publisher, first_id: int, count: int) -> None:
    for packet_id in range(first_id, first_id + count):
        publisher.expect_ack(PUBACK, packet_id, timeout=BURST_TIMEOUT)


def congestion_warnings(broker, client_id: str) -> list[str]:
    pattern = re.compile(rf"Client '{re.escape(client_id)}' .*stayed congested")
    return [line for line in broker.log_lines("WARNING") if pattern.search(line)]


def test_burst_reaches_online_qos1_subscriber_in_order(mqtt_broker, paho, raw, topic):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe(topic, qos=1)
    publisher = raw.open(mqtt_broker)
    publisher.connect("burst-publisher")

    publisher.send(burst(topic, BURST_SIZE))
    received = subscriber.collect(BURST_SIZE, timeout=BURST_TIMEOUT)
    expect_pubacks(publisher, 1, BURST_SIZE)

    assert [int(message.payload) for message in received] == list(range(BURST_SIZE))
    assert {message.qos for message in received} == {1}
    assert congestion_warnings(mqtt_broker, subscriber.client_id) == []


def test_two_publishers_wait_for_one_subscriber(mqtt_broker, paho, raw, topic):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe(topic, qos=1)
    first = raw.open(mqtt_broker)
    first.connect("first-publisher")
    second = raw.open(mqtt_broker)
    second.connect("second-publisher")
    half = BURST_SIZE // 2

    first.send(burst(topic, half))
    second.send(burst(topic, half, first=half))
    received = [int(message.payload) for message in subscriber.collect(BURST_SIZE, timeout=BURST_TIMEOUT)]

    assert sorted(received) == list(range(BURST_SIZE))
    assert [number for number in received if number < half] == list(range(half))
    assert [number for number in received if number >= half] == list(range(half, BURST_SIZE))
    assert congestion_warnings(mqtt_broker, subscriber.client_id) == []


def test_stalled_subscriber_stops_holding_publisher(mqtt_broker, raw, topic):
    subscriber = raw.open(mqtt_broker)
    subscriber.connect("stalled-subscriber")
    assert subscriber.subscribe(1, [(topic, 1)]) == [1]
    publisher = raw.open(mqtt_broker)
    publisher.connect("publisher-of-stalled")

    # The subscriber reads nothing, so only the stall timeout lets the broker read the whole burst.
    publisher.send(burst(topic, BURST_SIZE))
    expect_pubacks(publisher, 1, BURST_SIZE)
    mqtt_broker.wait_for_log(r"WARNING .*Client 'stalled-subscriber' .*stayed congested")
    received = [int(subscriber.receive_publish().payload) for _ in range(MAX_INFLIGHT_MESSAGES + MAX_QUEUED_MESSAGES)]
    publisher.publish(topic, b"sentinel", qos=1, packet_id=1)
    after_drain = subscriber.receive_publish()

    # The messages in flight stay. Past the queue's bound, the oldest queued ones were dropped.
    assert received == list(range(MAX_INFLIGHT_MESSAGES)) + list(range(BURST_SIZE - MAX_QUEUED_MESSAGES, BURST_SIZE))
    assert after_drain.payload == b"sentinel"
    assert len(congestion_warnings(mqtt_broker, "stalled-subscriber")) == 1
    mqtt_broker.wait_for_log(r"INFO .*Client 'stalled-subscriber' .*caught up")


def test_slow_qos0_subscriber_holds_publisher_until_timeout(mqtt_broker, raw, topic):
    subscriber = raw.open(mqtt_broker)
    subscriber.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SUBSCRIBER_RECEIVE_BUFFER)
    subscriber.connect("slow-qos0-subscriber")
    assert subscriber.subscribe(1, [(topic, 0)]) == [0]
    publisher = raw.open(mqtt_broker)
    # The broker allows 1.5 s of silence at keepalive 1 s, less than the hold, which must not count as silence.
    publisher.connect("qos0-publisher", keepalive=1)
    publisher.socket.settimeout(RELEASE_TIMEOUT + BURST_TIMEOUT)
    payload = b"x" * LARGE_PAYLOAD_SIZE

    publisher.send(b"".join(publish_packet(topic, payload, qos=0) for _ in range(LARGE_PAYLOAD_COUNT)))
    publisher.send(control_packet(PINGREQ << 4, b""))
    publisher.expect(PINGRESP, timeout=RELEASE_TIMEOUT)

    mqtt_broker.wait_for_log(r"WARNING .*Client 'slow-qos0-subscriber' .*stayed congested")
    # PINGRESP follows every delivery that the broker kept for the subscriber.
    subscriber.send(control_packet(PINGREQ << 4, b""))
    received = 0
    while (packet := subscriber.read_packet(timeout=BURST_TIMEOUT)).packet_type != PINGRESP:
        assert packet.packet_type == PUBLISH
        assert packet.payload == payload
        received += 1

    assert 0 < received < LARGE_PAYLOAD_COUNT


def test_publisher_is_not_held_by_own_subscription(mqtt_broker, raw, topic):
    client = raw.open(mqtt_broker)
    client.connect("self-subscriber")
    assert client.subscribe(1, [(topic, 1)]) == [1]

    # The client reads nothing until the whole burst is written, like a publisher that
    # only handles deliveries afterwards. Waiting for itself would stall it.
    client.send(burst(topic, BURST_SIZE // 4, first=1))
    expect_pubacks(client, 2, BURST_SIZE // 4)

    assert congestion_warnings(mqtt_broker, "self-subscriber") == []
