"""Retained messages: set, replace, clear, and delivery to new subscribers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(30)


def subscribe_and_list_retained(paho, broker, topic_filter: str, sentinel: str, qos: int = 1) -> list:
    """Subscribe a new client and return what arrives before a sentinel published afterwards."""
    subscriber = paho.connect(broker)
    subscriber.subscribe([(topic_filter, qos), (sentinel, 1)])
    paho.connect(broker).publish(sentinel, b"end", qos=1)
    return subscriber.messages_until(sentinel)


def test_retained_message_reaches_new_subscriber(mqtt_broker, paho, topic):
    paho.connect(mqtt_broker).publish(topic, b"stored", qos=1, retain=True)

    received = subscribe_and_list_retained(paho, mqtt_broker, topic, f"{topic}-sentinel")

    assert [(m.topic, m.payload) for m in received] == [(topic, b"stored")]
    assert received[0].retain is True
    assert received[0].qos == 1


def test_retained_qos_is_capped_by_subscription(mqtt_broker, paho, topic):
    paho.connect(mqtt_broker).publish(topic, b"stored", qos=2, retain=True)

    received = subscribe_and_list_retained(paho, mqtt_broker, topic, f"{topic}-sentinel", qos=0)

    assert [(m.payload, m.qos, m.retain) for m in received] == [(b"stored", 0, True)]


def test_live_delivery_has_retain_flag_clear(mqtt_broker, paho, topic):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe(topic, qos=1)

    paho.connect(mqtt_broker).publish(topic, b"live", qos=1, retain=True)
    message = subscriber.next_message()

    assert message.payload == b"live"
    assert message.retain is False


def test_retained_message_is_replaced(mqtt_broker, paho, topic):
    publisher = paho.connect(mqtt_broker)
    publisher.publish(topic, b"first", qos=1, retain=True)
    publisher.publish(topic, b"second", qos=1, retain=True)

    received = subscribe_and_list_retained(paho, mqtt_broker, topic, f"{topic}-sentinel")

    assert [m.payload for m in received] == [b"second"]


def test_empty_payload_clears_retained_message(mqtt_broker, paho, topic):
    publisher = paho.connect(mqtt_broker)
    publisher.publish(topic, b"doomed", qos=1, retain=True)
    publisher.publish(topic, b"", qos=1, retain=True)

    received = subscribe_and_list_retained(paho, mqtt_broker, topic, f"{topic}-sentinel")

    assert received == []


def test_wildcard_subscription_gets_every_retained_match(mqtt_broker, paho, topic):
    publisher = paho.connect(mqtt_broker)
    for room in ("kitchen", "hall", "attic"):
        publisher.publish(f"{topic}/{room}/temp", room.encode(), qos=1, retain=True)
    publisher.publish(f"{topic}/hall/humidity", b"no match", qos=1, retain=True)

    received = subscribe_and_list_retained(paho, mqtt_broker, f"{topic}/+/temp", f"{topic}-sentinel")

    assert sorted(m.payload for m in received) == [b"attic", b"hall", b"kitchen"]
    assert all(m.retain for m in received)


def test_mosquitto_sub_sees_retained_message(mqtt_broker, mosquitto, topic):
    stored = mosquitto.pub(mqtt_broker, "-t", topic, "-m", "from mosquitto_pub", "-r", "-q", "1")

    result = mosquitto.sub_run(mqtt_broker, "-t", topic, "-C", "1", "-W", "5", "-F", "%r %p")

    assert stored.returncode == 0, stored.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 from mosquitto_pub\n"


def test_mosquitto_pub_null_message_clears_retained(mqtt_broker, paho, mosquitto, topic):
    paho.connect(mqtt_broker).publish(topic, b"doomed", qos=1, retain=True)

    cleared = mosquitto.pub(mqtt_broker, "-t", topic, "-r", "-n", "-q", "1")
    received = subscribe_and_list_retained(paho, mqtt_broker, topic, f"{topic}-sentinel")

    assert cleared.returncode == 0, cleared.stderr
    assert received == []
