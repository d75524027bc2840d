"""Will messages: published when a client vanishes, discarded on a clean DISCONNECT."""

from __future__ import annotations

import os
import signal

import pytest
from rawclient import DISCONNECT, connect_packet, control_packet

pytestmark = pytest.mark.timeout(30)


def watch(paho, broker, topic: str):
    """Connect a client that receives the will topic and a sentinel below it."""
    watcher = paho.connect(broker)
    watcher.subscribe([(topic, 1), (f"{topic}/sentinel", 1)])
    return watcher


def test_will_published_when_socket_closes(mqtt_broker, raw, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    client = raw.open(mqtt_broker)
    client.connect("raw-will-abrupt", will=(topic, b"gone", 1, False))

    client.close()
    message = watcher.next_message()

    assert message.topic == topic
    assert message.payload == b"gone"
    assert message.qos == 1
    assert message.retain is False


def test_will_not_published_after_disconnect(mqtt_broker, raw, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    client = raw.open(mqtt_broker)
    client.connect("raw-will-clean", will=(topic, b"must not appear", 1, False))

    client.send(control_packet(DISCONNECT << 4, b""))
    assert client.wait_closed()
    watcher.publish(f"{topic}/sentinel", b"end", qos=1)

    assert watcher.messages_until(f"{topic}/sentinel") == []


def test_paho_clean_disconnect_discards_will(mqtt_broker, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    client = paho.create()
    client.client.will_set(topic, b"must not appear", qos=1)
    client.connect(mqtt_broker)

    client.disconnect()
    watcher.publish(f"{topic}/sentinel", b"end", qos=1)

    assert client.disconnect_reason.is_failure is False
    assert watcher.messages_until(f"{topic}/sentinel") == []


def test_retained_will_reaches_later_subscriber(mqtt_broker, raw, paho, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-will-retained", will=(topic, b"offline", 1, True))
    watcher = watch(paho, mqtt_broker, topic)

    client.close()
    assert watcher.next_message().payload == b"offline"
    late = paho.connect(mqtt_broker)
    late.subscribe(topic, qos=1)
    message = late.next_message()

    assert message.payload == b"offline"
    assert message.retain is True
    watcher.publish(topic, b"", qos=1, retain=True)


def test_will_published_after_reserved_packet_type(mqtt_broker, raw, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    client = raw.open(mqtt_broker)
    client.connect("raw-will-reserved", will=(topic, b"broken", 0, False))

    # Packet type 0 is reserved, so the broker must close the connection as a protocol error.
    client.send(b"\x00\x00")

    assert client.wait_closed()
    assert watcher.next_message().payload == b"broken"


# mosquitto 2.0.11 drops the will in this case, although MQTT 3.1.1 (section 3.1.2.5)
# publishes it whenever the server closes the connection for a protocol error.
@pytest.mark.bundled_only
def test_will_published_after_second_connect(mqtt_broker, raw, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    client = raw.open(mqtt_broker)
    client.connect("raw-will-second-connect", will=(topic, b"broken", 0, False))

    # A second CONNECT on one connection is a protocol violation that closes it.
    client.send(connect_packet("raw-will-second-connect"))

    assert client.wait_closed()
    assert watcher.next_message().payload == b"broken"


def test_killed_mosquitto_sub_triggers_will(mqtt_broker, paho, mosquitto, topic):
    watcher = watch(paho, mqtt_broker, topic)
    ready_topic = f"{topic}/ready"
    watcher.publish(ready_topic, b"ready", qos=1, retain=True)
    subscriber = mosquitto.sub(
        mqtt_broker, "-t", ready_topic, "--will-topic", topic, "--will-payload", "killed", "--will-qos", "1"
    )
    assert subscriber.next_line() == "ready"

    os.kill(subscriber.process.pid, signal.SIGKILL)
    message = watcher.next_message()

    assert message.topic == topic
    assert message.payload == b"killed"
    watcher.publish(ready_topic, b"", qos=1, retain=True)


def test_will_published_on_takeover(mqtt_broker, raw, paho, topic):
    watcher = watch(paho, mqtt_broker, topic)
    first = raw.open(mqtt_broker)
    first.connect("raw-will-takeover", will=(topic, b"taken over", 1, False))

    second = raw.open(mqtt_broker)
    second.connect("raw-will-takeover")
    assert first.wait_closed()
    watcher.publish(f"{topic}/sentinel", b"end", qos=1)

    assert [message.payload for message in watcher.messages_until(f"{topic}/sentinel")] == [b"taken over"]
