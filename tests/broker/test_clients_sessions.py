"""Persistent sessions: stored subscriptions, the offline queue and its bound, clean sessions."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(30)

MAX_QUEUED_MESSAGES = 5


@pytest.fixture(scope="module")
def broker_settings():
    return {"limits": {"max_queued_messages": MAX_QUEUED_MESSAGES, "max_inflight_messages": 20}}


def go_offline_subscribed(paho, broker, topic: str, qos: int = 1) -> str:
    """Create a persistent session subscribed to `topic`, disconnect, and return its client id."""
    client_id = paho.unique("persistent")
    client = paho.connect(broker, client_id, clean_session=False)
    client.subscribe(topic, qos=qos)
    client.disconnect()
    return client_id


def test_subscription_survives_reconnect(mqtt_broker, paho, topic):
    client_id = go_offline_subscribed(paho, mqtt_broker, topic)

    returned = paho.connect(mqtt_broker, client_id, clean_session=False)
    paho.connect(mqtt_broker).publish(topic, b"no resubscribe needed", qos=1)
    message = returned.next_message()

    assert returned.session_present is True
    assert message.payload == b"no resubscribe needed"


@pytest.mark.parametrize("qos", [1, 2])
def test_offline_messages_delivered_on_reconnect(mqtt_broker, paho, topic, qos):
    client_id = go_offline_subscribed(paho, mqtt_broker, topic, qos=qos)
    publisher = paho.connect(mqtt_broker)
    for index in range(3):
        publisher.publish(topic, f"offline {index}".encode(), qos=qos)

    returned = paho.connect(mqtt_broker, client_id, clean_session=False)
    received = returned.collect(3)

    assert returned.session_present is True
    assert [m.payload for m in received] == [b"offline 0", b"offline 1", b"offline 2"]
    assert {m.qos for m in received} == {qos}


def test_offline_queue_is_bounded(mqtt_broker, paho, topic):
    client_id = go_offline_subscribed(paho, mqtt_broker, topic)
    publisher = paho.connect(mqtt_broker)
    published = 3 * MAX_QUEUED_MESSAGES
    for index in range(published):
        publisher.publish(topic, str(index).encode(), qos=1)

    returned = paho.connect(mqtt_broker, client_id, clean_session=False)
    sentinel = f"{topic}/sentinel"
    returned.subscribe(sentinel, qos=1)
    publisher.publish(sentinel, b"end", qos=1)
    queued = [int(m.payload) for m in returned.messages_until(sentinel)]

    assert 1 <= len(queued) <= MAX_QUEUED_MESSAGES, f"Received {len(queued)} of {published}: {queued}"
    assert queued == sorted(queued)
    assert set(queued) <= set(range(published))


def test_clean_session_discards_stored_session(mqtt_broker, paho, topic):
    client_id = go_offline_subscribed(paho, mqtt_broker, topic)
    paho.connect(mqtt_broker).publish(topic, b"discarded", qos=1)

    cleaned = paho.connect(mqtt_broker, client_id, clean_session=True)
    sentinel = f"{topic}-sentinel"
    cleaned.subscribe(sentinel, qos=1)
    cleaned.publish(sentinel, b"end", qos=1)

    assert cleaned.session_present is False
    assert cleaned.messages_until(sentinel) == []
    cleaned.disconnect()
    again = paho.connect(mqtt_broker, client_id, clean_session=False)
    assert again.session_present is False


def test_new_persistent_session_reports_no_session(mqtt_broker, paho):
    client = paho.connect(mqtt_broker, paho.unique("fresh"), clean_session=False)

    assert client.session_present is False


def test_mosquitto_sub_persistent_session_gets_offline_message(mqtt_broker, paho, mosquitto, topic):
    client_id = paho.unique("mosquitto-sub")
    ready_topic = f"{topic}/ready"
    publisher = paho.connect(mqtt_broker)
    publisher.publish(ready_topic, b"ready", qos=1, retain=True)
    first = mosquitto.sub_run(mqtt_broker, "-c", "-i", client_id, "-q", "1", "-t", topic, "-t", ready_topic,
                              "-C", "1", "-W", "5")
    assert first.stdout == "ready\n", first.stderr

    publisher.publish(topic, b"while away", qos=1)
    second = mosquitto.sub_run(mqtt_broker, "-c", "-i", client_id, "-q", "1", "-t", topic, "-C", "1", "-W", "5")

    assert second.returncode == 0, second.stderr
    assert second.stdout == "while away\n"
    publisher.publish(ready_topic, b"", qos=1, retain=True)
