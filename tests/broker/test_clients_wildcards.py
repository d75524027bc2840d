"""SUBSCRIBE with '+' and '#', UNSUBSCRIBE, overlapping filters and invalid topic names."""

from __future__ import annotations

import pytest
from rawclient import UNSUBACK, publish_packet, unsubscribe_packet

pytestmark = pytest.mark.timeout(30)

# (filter, topic, delivered); "{p}" is replaced by a prefix unique to the case.
MATCH_CASES = [
    ("{p}/+/temp", "{p}/kitchen/temp", True),
    ("{p}/+/temp", "{p}/kitchen/sink/temp", False),
    ("{p}/+", "{p}/a", True),
    ("{p}/+", "{p}", False),
    ("{p}/+", "{p}/a/b", False),
    ("{p}/+/+", "{p}/a/b", True),
    ("{p}/+/b", "{p}//b", True),
    ("{p}/#", "{p}", True),
    ("{p}/#", "{p}/a/b/c", True),
    ("{p}/a/#", "{p}/b/c", False),
    ("+/{p}", "x/{p}", True),
    ("{p}/exact", "{p}/exact/", False),
    ("{p}/Case", "{p}/case", False),
]


@pytest.mark.parametrize(("topic_filter", "topic_name", "delivered"), MATCH_CASES)
def test_filter_matching(mqtt_broker, paho, topic, topic_filter, topic_name, delivered):
    prefix = topic.replace("/", "_")
    topic_filter, topic_name = topic_filter.format(p=prefix), topic_name.format(p=prefix)
    sentinel = f"{prefix}-sentinel"
    subscriber = paho.connect(mqtt_broker)
    assert [code.value for code in subscriber.subscribe([(topic_filter, 1), (sentinel, 1)])] == [1, 1]
    publisher = paho.connect(mqtt_broker)

    publisher.publish(topic_name, b"probe", qos=1)
    publisher.publish(sentinel, b"end", qos=1)
    received = [m.topic for m in subscriber.messages_until(sentinel)]

    assert received == ([topic_name] if delivered else [])


def test_multi_level_wildcard_alone_gets_everything(mqtt_broker, paho, topic):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe("#", qos=1)

    paho.connect(mqtt_broker).publish(f"{topic}/deep/down/here", b"x", qos=1)

    assert subscriber.next_message().topic == f"{topic}/deep/down/here"
    subscriber.unsubscribe("#")


# MQTT 3.1.1 (section 3.3.5) requires the maximum QoS of the matching subscriptions;
# mosquitto 2.0.11 without duplicates uses the QoS of one of them instead.
@pytest.mark.bundled_only
def test_overlapping_filters_deliver_once_at_highest_qos(mqtt_broker, paho, topic):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe([(f"{topic}/#", 0), (f"{topic}/+", 1), (f"{topic}/a", 0)])
    sentinel = f"{topic}-sentinel"
    subscriber.subscribe(sentinel, qos=1)
    publisher = paho.connect(mqtt_broker)

    publisher.publish(f"{topic}/a", b"once", qos=1)
    publisher.publish(sentinel, b"end", qos=1)
    received = subscriber.messages_until(sentinel)

    assert [(m.payload, m.qos) for m in received] == [(b"once", 1)]


def test_unsubscribe_stops_delivery(mqtt_broker, paho, topic):
    subscriber = paho.connect(mqtt_broker)
    sentinel = f"{topic}-sentinel"
    subscriber.subscribe([(f"{topic}/+", 1), (sentinel, 1)])
    publisher = paho.connect(mqtt_broker)
    publisher.publish(f"{topic}/before", b"before", qos=1)
    assert subscriber.next_message().payload == b"before"

    subscriber.unsubscribe(f"{topic}/+")
    publisher.publish(f"{topic}/after", b"after", qos=1)
    publisher.publish(sentinel, b"end", qos=1)

    assert subscriber.messages_until(sentinel) == []


def test_raw_unsubscribe_gets_unsuback(mqtt_broker, raw, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-unsubscribe")
    client.subscribe(5, [(f"{topic}/#", 1)])

    client.send(unsubscribe_packet(9, [f"{topic}/#"]))
    unsuback = client.expect(UNSUBACK)

    assert unsuback.packet_id == 9
    assert unsuback.body == b"\x00\x09"


def test_mosquitto_sub_with_single_level_wildcard(mqtt_broker, paho, mosquitto, topic):
    paho.connect(mqtt_broker).publish(f"{topic}/hall/temp", b"21.5", qos=1, retain=True)

    result = mosquitto.sub_run(mqtt_broker, "-t", f"{topic}/+/temp", "-C", "1", "-W", "5", "-v")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{topic}/hall/temp 21.5\n"
    paho.connect(mqtt_broker).publish(f"{topic}/hall/temp", b"", qos=1, retain=True)


@pytest.mark.parametrize(
    "bad_topic",
    [b"{p}/+/x", b"{p}/#", b"{p}/\xff\xfe", b"{p}/nul\x00byte", b"{p}/\xed\xa0\x80surrogate"],
    ids=["plus", "hash", "invalid-utf8", "u0000", "utf16-surrogate"],
)
def test_invalid_publish_topic_closes_only_that_connection(mqtt_broker, raw, paho, topic, bad_topic):
    prefix = topic.replace("/", "_").encode()
    bad_topic = bad_topic.replace(b"{p}", prefix)
    sentinel = f"{topic}-sentinel"
    bystander = paho.connect(mqtt_broker)
    bystander.subscribe([(prefix.decode() + "/#", 1), (sentinel, 1)])
    offender = raw.open(mqtt_broker)
    offender.connect(f"raw-bad-topic-{bad_topic.hex()[-8:]}")

    offender.send(publish_packet(bad_topic, b"rejected", qos=1, packet_id=3))

    assert offender.wait_closed(), f"The broker kept the connection open after PUBLISH to {bad_topic!r}."
    bystander.publish(sentinel, b"end", qos=1)
    assert bystander.messages_until(sentinel) == []
