"""Interoperability scenarios for MQTT 3.1.1, run with paho-mqtt 2.x against one broker.

The scenarios and what each one checks follow the Eclipse Paho interoperability suite
for MQTT 3.1.1 (repository eclipse/paho.mqtt.testing, file interoperability/client_test.py).
They are basic publish/subscribe, retained messages, offline message queueing, will
message, zero-length client id, overlapping subscriptions, keepalive, redelivery on
reconnect, subscribe failure, '$' topics, unsubscribe and the session present flag. The tests are written anew for paho-mqtt 2.x (CallbackAPIVersion.VERSION2)
and wait on events instead of sleeping. Where paho-mqtt cannot send what a scenario
needs (a second CONNECT, a wrong protocol name, an empty client id with a persistent
session), a raw socket sends literal bytes instead.

Run with BROKER_TESTS_REFERENCE=mosquitto to check the scenarios against Debian's mosquitto.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from rawclient import RawConnection

pytestmark = pytest.mark.timeout(60)

# The Paho suite's topic names and topic filters.
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDCARD_TOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NO_SUBSCRIBE_TOPIC = "test/nosubscribe"

# A user whose subscriptions to NO_SUBSCRIBE_TOPIC an access rule denies.
RESTRICTED_USER = ("alice", "alice-secret")

# Seconds between two looks into a socket's receive buffer, which offers no event to wait on.
PEEK_INTERVAL = 0.02
WAIT_TIMEOUT = 5.0
# Seconds a paho client with keepalive 1 s may stay silent before the will must arrive.
# mosquitto 2.0.11 needs about 4.5 s because it checks keepalives on a coarse timer.
KEEPALIVE_WILL_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def broker_settings(broker_files):
    assert shutil.which("mosquitto_passwd"), "mosquitto_passwd is missing; install the Debian package mosquitto."
    user, password = RESTRICTED_USER
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(broker_files / "passwd"), user, password],
                   check=True, capture_output=True, timeout=10)
    settings = {"broker": {"password_file": "passwd"}}
    # mosquitto 2.0.11 never fails a SUBSCRIBE for its ACL file (it filters deliveries
    # instead), and the ACL file the reference run writes hides '$' topics from anonymous
    # clients, so the reference broker runs without the rule.
    if not os.environ.get("BROKER_TESTS_REFERENCE"):
        settings["acl"] = [{"user": user, "topic": NO_SUBSCRIBE_TOPIC, "access": "subscribe", "allow": False}]
    return settings


@pytest.fixture(autouse=True)
def no_retained_messages(mqtt_broker, paho):
    """Clear retained messages on the suite's topics before each scenario, as the Paho suite does."""
    cleaner = paho.connect(mqtt_broker, paho.unique("cleanup"))
    for topic in TOPICS:
        cleaner.publish(topic, b"", qos=1, retain=True)
    cleaner.disconnect()


def messages_before(client, payload: bytes, timeout: float = WAIT_TIMEOUT) -> list:
    """Return the messages a paho client receives before the first one carrying `payload`."""
    deadline = time.monotonic() + timeout
    before = []
    while True:
        message = client.next_message(max(deadline - time.monotonic(), 0.001))
        if message.payload == payload:
            return before
        before.append(message)


def wait_until_buffered(sock: socket.socket, markers: list[bytes], timeout: float = WAIT_TIMEOUT) -> None:
    """Wait until unread bytes in `sock` contain every marker, without consuming them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            waiting = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            waiting = b""
        if all(marker in waiting for marker in markers):
            return
        assert time.monotonic() < deadline, f"Only {waiting!r} reached the paused client within {timeout} s."
        time.sleep(PEEK_INTERVAL)


def test_basic_publish_subscribe(mqtt_broker, paho):
    client_id = paho.unique("basic")
    paho.connect(mqtt_broker, client_id).disconnect()
    client = paho.connect(mqtt_broker, client_id)
    client.subscribe(TOPICS[0], qos=2)

    for qos in (0, 1, 2):
        client.publish(TOPICS[0], f"qos {qos}".encode(), qos=qos)
    received = client.collect(3)

    assert client.session_present is False
    assert [m.payload for m in received] == [b"qos 0", b"qos 1", b"qos 2"]
    assert [m.qos for m in received] == [0, 1, 2]


def test_basic_second_connect_rejected(mqtt_broker):
    connection = RawConnection(mqtt_broker.host, mqtt_broker.port)
    try:
        connection.connect("basic-twice")
        connection.send(bytes.fromhex("10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 72 61 77"))
        received, closed = connection.read_until_closed()
    finally:
        connection.close()

    assert received == b""
    assert closed


def test_basic_wrong_protocol_name_rejected(mqtt_broker):
    connection = RawConnection(mqtt_broker.host, mqtt_broker.port)
    try:
        # Protocol name "hj" instead of "MQTT", as in the Paho suite.
        connection.send(bytes.fromhex("10 0b 00 02 68 6a 04 02 00 3c 00 01 78"))
        received, closed = connection.read_until_closed()
    finally:
        connection.close()

    assert not received.startswith(bytes.fromhex("20 02 00 00")), f"The broker accepted it: {received.hex(' ')}."
    assert closed


def test_retained_messages(mqtt_broker, paho):
    publisher = paho.connect(mqtt_broker)
    publisher.publish(TOPICS[1], b"qos 0", qos=0, retain=True)
    publisher.publish(TOPICS[2], b"qos 1", qos=1, retain=True)
    publisher.publish(TOPICS[3], b"qos 2", qos=2, retain=True)
    publisher.subscribe(WILDCARD_TOPICS[5], qos=2)
    retained = publisher.collect(3)

    for topic in TOPICS[1:4]:
        publisher.publish(topic, b"", qos=1, retain=True)
    later = paho.connect(mqtt_broker)
    later.subscribe(WILDCARD_TOPICS[5], qos=2)
    # paho hands a QoS 2 message over on PUBREL, so a QoS 2 sentinel keeps the order.
    later.publish(TOPICS[3], b"sentinel", qos=2)

    assert sorted((m.topic, m.payload, m.qos) for m in retained) == [
        ("Topic/C", b"qos 1", 1), ("TopicA/B", b"qos 0", 0), ("TopicA/C", b"qos 2", 2)]
    assert all(m.retain for m in retained)
    assert messages_before(later, b"sentinel") == []


def test_offline_message_queueing(mqtt_broker, paho, record_property):
    client_id = paho.unique("offline")
    subscriber = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    subscriber.subscribe(WILDCARD_TOPICS[5], qos=2)
    subscriber.disconnect()

    publisher = paho.connect(mqtt_broker)
    publisher.publish(TOPICS[1], b"qos 0", qos=0)
    publisher.publish(TOPICS[2], b"qos 1", qos=1)
    publisher.publish(TOPICS[3], b"qos 2", qos=2)
    returning = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    publisher.publish(TOPICS[3], b"sentinel", qos=2)
    queued = messages_before(returning, b"sentinel")
    record_property("qos0_queued_for_offline_client", len(queued) == 3)

    assert returning.session_present is True
    assert [m.payload for m in queued if m.qos] == [b"qos 1", b"qos 2"]
    assert [m.payload for m in queued] in ([b"qos 1", b"qos 2"], [b"qos 0", b"qos 1", b"qos 2"])


def test_will_message(mqtt_broker, paho):
    subscriber = paho.create(paho.unique("will-watch"), clean_session=False).connect(mqtt_broker)
    subscriber.subscribe(TOPICS[2], qos=2)
    client = paho.create()
    client.client.will_set(TOPICS[2], b"client not disconnected", qos=0)
    client.connect(mqtt_broker, keepalive=2)

    # Cut the TCP connection under paho, so no DISCONNECT is sent.
    client.client.socket().shutdown(socket.SHUT_RDWR)
    message = subscriber.next_message()

    assert message.topic == TOPICS[2]
    assert message.payload == b"client not disconnected"
    assert client.disconnected.wait(WAIT_TIMEOUT)


def test_zero_length_client_id_needs_clean_session(mqtt_broker):
    connection = RawConnection(mqtt_broker.host, mqtt_broker.port)
    try:
        # paho-mqtt raises ValueError for an empty client id with clean_session=False, so raw bytes send it.
        connection.send(bytes.fromhex("10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00"))
        received, closed = connection.read_until_closed()
    finally:
        connection.close()

    assert received == bytes.fromhex("20 02 00 02")
    assert closed


def test_zero_length_client_id_with_clean_session(mqtt_broker, paho):
    client = paho.create("").connect(mqtt_broker)
    client.subscribe(TOPICS[0], qos=1)

    client.publish(TOPICS[0], b"anonymous id", qos=1)

    assert client.next_message().payload == b"anonymous id"


# mosquitto with allow_duplicate_messages false (as the reference config sets it) sends one
# copy at the QoS of the first matching subscription, 1 here, which the Paho suite rejects.
@pytest.mark.bundled_only
def test_overlapping_subscriptions(mqtt_broker, paho, record_property):
    client = paho.connect(mqtt_broker)
    client.subscribe([(WILDCARD_TOPICS[6], 2), (WILDCARD_TOPICS[0], 1)])

    client.publish(TOPICS[3], b"overlapping topic filters", qos=2)
    client.publish(TOPICS[3], b"sentinel", qos=2)
    received = messages_before(client, b"sentinel")
    record_property("overlapping_copies", len(received))

    assert {m.payload for m in received} == {b"overlapping topic filters"}
    if len(received) == 1:
        assert received[0].qos == 2
    else:
        assert sorted(m.qos for m in received) == [1, 2]


def test_keepalive_expiry_publishes_will(mqtt_broker, paho):
    watcher = paho.connect(mqtt_broker, keepalive=0)
    watcher.subscribe(TOPICS[4], qos=2)
    silent = paho.create()
    silent.client.will_set(TOPICS[4], b"keepalive expiry", qos=0)
    silent.connect(mqtt_broker, keepalive=1)

    # Stopping paho's network thread stops its PINGREQs, but the socket stays open.
    silent.client.loop_stop()
    message = watcher.next_message(KEEPALIVE_WILL_TIMEOUT)
    silent.client.loop_start()

    assert message.payload == b"keepalive expiry"
    assert silent.disconnected.wait(WAIT_TIMEOUT), "The broker left the silent client connected."


def test_redelivery_on_reconnect(mqtt_broker, paho):
    client_id = paho.unique("redelivery")
    paused = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    paused.subscribe(WILDCARD_TOPICS[6], qos=2)

    # With its network thread stopped, the client neither reads nor acknowledges deliveries.
    paused.client.loop_stop()
    publisher = paho.connect(mqtt_broker)
    publisher.publish(TOPICS[1], b"qos 1", qos=1)
    publisher.publish(TOPICS[3], b"qos 2", qos=2)
    wait_until_buffered(paused.client.socket(), [TOPICS[1].encode(), TOPICS[3].encode()])
    paused.disconnect()
    assert paused.messages.empty()

    resumed = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    redelivered = resumed.collect(2)

    assert resumed.session_present is True
    assert sorted((m.topic, m.payload, m.qos) for m in redelivered) == [
        ("TopicA/B", b"qos 1", 1), ("TopicA/C", b"qos 2", 2)]
    assert all(m.dup for m in redelivered)


# The Paho suite runs this scenario only against servers that reject some subscription.
# mosquitto 2.0.11 grants every SUBSCRIBE and applies its ACL file to deliveries instead.
@pytest.mark.bundled_only
def test_subscribe_failure(mqtt_broker, paho):
    user, password = RESTRICTED_USER
    client = paho.connect(mqtt_broker, username=user, password=password)

    reason_codes = client.subscribe(NO_SUBSCRIBE_TOPIC, qos=2)

    assert [code.value for code in reason_codes] == [0x80]


def test_dollar_topics(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, keepalive=0)
    client.subscribe(WILDCARD_TOPICS[5], qos=2)
    witness = paho.connect(mqtt_broker)
    witness.subscribe("$TopicA/#", qos=1)

    client.publish("$" + TOPICS[1], b"dollar", qos=1)
    client.publish(TOPICS[1], b"sentinel", qos=1)

    assert witness.next_message().topic == "$TopicA/B"
    assert messages_before(client, b"sentinel") == []


def test_unsubscribe(mqtt_broker, paho):
    subscriber = paho.connect(mqtt_broker)
    for topic in TOPICS[0:3]:
        subscriber.subscribe(topic, qos=2)
    subscriber.unsubscribe(TOPICS[0])

    publisher = paho.connect(mqtt_broker)
    for topic in TOPICS[0:3]:
        publisher.publish(topic, b"", qos=1)
    publisher.publish(TOPICS[2], b"sentinel", qos=1)
    received = messages_before(subscriber, b"sentinel")

    assert [m.topic for m in received] == [TOPICS[1], TOPICS[2]]


def test_session_present_flag(mqtt_broker, paho):
    client_id = paho.unique("session")
    first = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    first.disconnect()
    resumed = paho.create(client_id, clean_session=False).connect(mqtt_broker)
    resumed.disconnect()
    cleaned = paho.create(client_id, clean_session=True).connect(mqtt_broker)
    cleaned.disconnect()
    fresh = paho.create(client_id, clean_session=False).connect(mqtt_broker)

    assert first.session_present is False
    assert resumed.session_present is True
    assert cleaned.session_present is False
    assert fresh.session_present is False
