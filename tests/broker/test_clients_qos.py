"""PUBLISH at QoS 0, 1 and 2 in both directions, packet identifiers, ordering and redelivery."""

from __future__ import annotations

import pytest
from rawclient import PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack_packet, control_packet, publish_packet

pytestmark = pytest.mark.timeout(30)

BURST_SIZE = 200


@pytest.fixture(scope="module")
def broker_settings():
    # The broker queues what exceeds a subscriber's in-flight window and drops past the
    # queue's bound, so the queue must hold a whole burst for the ordering test.
    return {"limits": {"max_inflight_messages": 20, "max_queued_messages": 10 * BURST_SIZE}}


@pytest.mark.parametrize("subscription_qos", [0, 1, 2])
@pytest.mark.parametrize("publish_qos", [0, 1, 2])
def test_delivered_qos_is_minimum(mqtt_broker, paho, topic, publish_qos, subscription_qos):
    subscriber = paho.connect(mqtt_broker)
    granted = subscriber.subscribe(topic, qos=subscription_qos)
    publisher = paho.connect(mqtt_broker)

    publisher.publish(topic, b"payload", qos=publish_qos)
    message = subscriber.next_message()

    assert [code.value for code in granted] == [subscription_qos]
    assert message.payload == b"payload"
    assert message.qos == min(publish_qos, subscription_qos)
    assert message.retain is False


@pytest.mark.parametrize("publish_qos", [0, 1, 2])
def test_mosquitto_clients_deliver_at_publish_qos(mqtt_broker, paho, mosquitto, topic, publish_qos):
    ready_topic = f"{topic}/ready"
    paho.connect(mqtt_broker).publish(ready_topic, b"ready", qos=1, retain=True)
    # The retained message on the second filter proves that both filters are active.
    subscriber = mosquitto.sub(mqtt_broker, "-q", "2", "-C", "2", "-F", "%t %q %p", "-t", topic, "-t", ready_topic)
    assert subscriber.next_line() == f"{ready_topic} 1 ready"

    result = mosquitto.pub(mqtt_broker, "-t", topic, "-q", str(publish_qos), "-m", "from mosquitto_pub")

    assert result.returncode == 0, result.stderr
    assert subscriber.next_line() == f"{topic} {publish_qos} from mosquitto_pub"
    assert subscriber.wait() == 0


def test_raw_qos1_publish_gets_puback_with_its_id(mqtt_broker, raw, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-qos1-publisher")

    client.send(publish_packet(topic, b"one", qos=1, packet_id=4321))
    puback = client.expect(PUBACK)

    assert puback.packet_id == 4321


def test_raw_qos2_publish_completes_exactly_once(mqtt_broker, raw, paho, topic):
    subscriber = paho.connect(mqtt_broker)
    # QoS 1, because paho hands a QoS 2 message over only after its own PUBREL arrives,
    # which could come after the sentinel.
    subscriber.subscribe(f"{topic}/#", qos=1)
    client = raw.open(mqtt_broker)
    client.connect("raw-qos2-publisher")

    client.send(publish_packet(topic, b"exactly once", qos=2, packet_id=7))
    first_pubrec = client.expect(PUBREC)
    client.send(publish_packet(topic, b"exactly once", qos=2, packet_id=7, dup=True))
    second_pubrec = client.expect(PUBREC)
    client.send(ack_packet(PUBREL, 7))
    pubcomp = client.expect(PUBCOMP)
    client.send(publish_packet(f"{topic}/sentinel", b"end", qos=1, packet_id=8))
    client.expect(PUBACK)

    assert first_pubrec.packet_id == 7
    assert second_pubrec.packet_id == 7
    assert pubcomp.packet_id == 7
    received = subscriber.messages_until(f"{topic}/sentinel")
    assert [(m.payload, m.qos) for m in received] == [(b"exactly once", 1)]


def test_raw_qos1_subscriber_gets_packet_ids(mqtt_broker, raw, paho, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-qos1-subscriber")
    assert client.subscribe(1, [(topic, 1)]) == [1]
    publisher = paho.connect(mqtt_broker)

    for index in range(3):
        publisher.publish(topic, f"m{index}".encode(), qos=1)
    packets = [client.expect(PUBLISH) for _ in range(3)]
    for packet in packets:
        client.send(ack_packet(PUBACK, packet.packet_id))

    assert [packet.payload for packet in packets] == [b"m0", b"m1", b"m2"]
    assert all(packet.qos == 1 for packet in packets)
    assert all(packet.packet_id != 0 for packet in packets)
    assert len({packet.packet_id for packet in packets}) == 3


def test_raw_qos0_subscriber_gets_no_packet_id(mqtt_broker, raw, paho, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-qos0-subscriber")
    assert client.subscribe(1, [(topic, 0)]) == [0]

    paho.connect(mqtt_broker).publish(topic, b"plain", qos=1)
    packet = client.expect(PUBLISH)

    assert packet.qos == 0
    assert packet.topic == topic
    assert packet.payload == b"plain"


def test_raw_qos2_subscriber_completes_handshake(mqtt_broker, raw, paho, topic):
    client = raw.open(mqtt_broker)
    client.connect("raw-qos2-subscriber")
    assert client.subscribe(2, [(topic, 2)]) == [2]
    publisher = paho.connect(mqtt_broker)

    publisher.publish(topic, b"two", qos=2)
    packet = client.expect(PUBLISH)
    client.send(ack_packet(PUBREC, packet.packet_id))
    pubrel = client.expect(PUBREL)
    client.send(ack_packet(PUBCOMP, packet.packet_id))

    assert packet.qos == 2
    assert packet.payload == b"two"
    assert pubrel.packet_id == packet.packet_id
    assert pubrel.flags == 0x02
    client.send(control_packet(PINGREQ << 4, b""))
    assert client.read_packet().packet_type == PINGRESP


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_burst_arrives_in_order(mqtt_broker, paho, topic, qos):
    subscriber = paho.connect(mqtt_broker)
    subscriber.subscribe(topic, qos=qos)
    publisher = paho.connect(mqtt_broker)

    sent = [publisher.client.publish(topic, str(index).encode(), qos=qos) for index in range(BURST_SIZE)]
    for info in sent:
        info.wait_for_publish(5)
    received = subscriber.collect(BURST_SIZE)

    assert all(info.is_published() for info in sent)
    assert [int(message.payload) for message in received] == list(range(BURST_SIZE))
    assert {message.qos for message in received} == {qos}


def test_unacknowledged_qos1_is_redelivered_with_dup(mqtt_broker, raw, paho, topic):
    client_id = "raw-redelivery"
    first = raw.open(mqtt_broker)
    assert first.connect(client_id, clean_session=False).body[1] == 0
    assert first.subscribe(1, [(topic, 1)]) == [1]
    paho.connect(mqtt_broker).publish(topic, b"ack me", qos=1)
    original = first.expect(PUBLISH)
    first.close()

    second = raw.open(mqtt_broker)
    connack = second.connect(client_id, clean_session=False)
    redelivered = second.expect(PUBLISH)
    second.send(ack_packet(PUBACK, redelivered.packet_id))

    assert original.dup is False
    assert connack.body == bytes([1, 0]), "CONNACK must report the stored session."
    assert redelivered.dup is True
    assert redelivered.qos == 1
    assert redelivered.payload == b"ack me"
    assert redelivered.packet_id == original.packet_id
    # Clean up the stored session so it does not outlive the test.
    cleanup = raw.open(mqtt_broker)
    assert cleanup.connect(client_id, clean_session=True).body == bytes([0, 0])
