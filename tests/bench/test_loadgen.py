"""The benchmark's packet encoding, and one short run of each scenario against mosquitto."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bench import brokers, loadgen, packets, report


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_round_trip(length: int, encoded: bytes) -> None:
    assert packets.encode_remaining_length(length) == encoded
    assert packets.decode_remaining_length(b"\x30" + encoded) == (length, len(encoded))


@pytest.mark.parametrize("length", [-1, 268_435_456])
def test_remaining_length_out_of_range_raises(length: int) -> None:
    with pytest.raises(ValueError, match=str(length)):
        packets.encode_remaining_length(length)


def test_remaining_length_cut_off_raises() -> None:
    with pytest.raises(packets.FramingError, match="cut off"):
        packets.decode_remaining_length(b"\x30\x80")
    with pytest.raises(packets.FramingError, match="longer than 4 bytes"):
        packets.decode_remaining_length(b"\x30\x80\x80\x80\x80\x01")


def test_connect_encodes_clean_session_and_keepalive() -> None:
    encoded = packets.connect("c1", keepalive=60)
    assert encoded == bytes.fromhex("10 0e 0004 4d515454 04 02 003c 0002 6331")


def test_subscribe_and_puback_encoding() -> None:
    assert packets.subscribe(7, "a/#", 1) == bytes.fromhex("82 08 0007 0003 612f23 01")
    assert packets.puback(0x1234) == bytes.fromhex("40 02 1234")
    assert packets.disconnect() == b"\xe0\x00"


def test_publish_encodes_qos0_and_qos1() -> None:
    assert packets.publish("t", b"hi") == bytes.fromhex("30 05 0001 74 6869")
    assert packets.publish("t", b"hi", qos=1, packet_id=3) == bytes.fromhex("32 07 0001 74 0003 6869")


@pytest.mark.parametrize("packet_id", [0, 65_536])
def test_invalid_packet_id_raises(packet_id: int) -> None:
    with pytest.raises(ValueError, match="Packet identifier"):
        packets.puback(packet_id)
    with pytest.raises(ValueError, match="Packet identifier"):
        packets.publish("t", b"", qos=1, packet_id=packet_id)


def test_publish_rejects_qos2() -> None:
    with pytest.raises(ValueError, match="QoS 2"):
        packets.publish("t", b"", qos=2, packet_id=1)


def test_publish_run_numbers_packets_in_order() -> None:
    run = packets.publish_run("bench/t", b"p" * 200)
    length = len(run) // packets.MAX_PACKET_ID
    assert len(run) == length * packets.MAX_PACKET_ID
    for packet_id in (1, 2, 128, 256, 65_535):
        start = (packet_id - 1) * length
        assert run[start : start + length] == packets.publish("bench/t", b"p" * 200, qos=1, packet_id=packet_id)


def test_pubacks_for_answers_each_whole_packet() -> None:
    deliveries = b"".join(packets.publish("q", b"x" * 5, qos=1, packet_id=i) for i in (1, 300, 65_535))
    length = len(deliveries) // 3
    offset = packets.packet_id_offset(deliveries[:length])
    acks = packets.pubacks_for(deliveries + deliveries[:4], length, offset)
    assert acks == packets.puback(1) + packets.puback(300) + packets.puback(65_535)


def test_check_first_bytes_names_the_stray_packet() -> None:
    length = len(packets.publish("t", b"x"))
    good = packets.publish("t", b"x") * 3
    packets.check_first_bytes(good, length, packets.PUBLISH)
    bad = good[: 2 * length] + bytes((0x31,)) + good[2 * length + 1 :]
    with pytest.raises(packets.FramingError, match="packet 2 starts with 0x31"):
        packets.check_first_bytes(bad, length, packets.PUBLISH)


def test_parse_connack_and_suback_reject_other_packets() -> None:
    assert packets.parse_connack(b"\x20\x02\x00\x05") == 5
    assert packets.parse_suback(b"\x90\x03\x00\x01\x01") == 1
    with pytest.raises(packets.FramingError, match="Expected a CONNACK"):
        packets.parse_connack(b"\x90\x02\x00\x00")
    with pytest.raises(packets.FramingError, match="Expected a SUBACK"):
        packets.parse_suback(b"\x20\x03\x00\x01\x01")


def test_report_marks_missed_targets_only_for_bundled() -> None:
    runs = [
        {"broker": name, "scenario": "idle", "run": number, "values": {"bytes_per_connection": value}}
        for name, number, value in [
            ("bundled", 1, 7000.0),
            ("bundled", 2, 9000.0),
            ("bundled", 3, 1000.0),
            ("mosquitto", 1, 700.0),
        ]
    ]
    runs.append({"broker": "mosquitto", "scenario": "idle", "run": 2, "error": "LoadError: refused"})
    assert report.medians(runs)[("bundled", "idle")]["bytes_per_connection"] == 7000.0
    row = report.markdown_table(runs, ["mosquitto", "bundled"], ["bundled"]).splitlines()[2]
    assert row.endswith("| 0.68 | 6.84 (**missed**) |")
    assert report.failures(runs) == ["mosquitto / idle / run 2: LoadError: refused"]


@pytest.fixture
def mosquitto(tmp_path: Path):
    with brokers.start_mosquitto(tmp_path) as broker:
        yield broker
    assert broker.process.returncode == 0


def test_fanin_delivers_every_message_via_mosquitto(mosquitto: brokers.RunningBroker) -> None:
    target = loadgen.Target(mosquitto.host, mosquitto.port)
    result = asyncio.run(loadgen.qos0_flow(target, "fanin", 2, 1, duration=0.3))
    assert result.sent > 0
    assert result.expected == result.sent
    assert result.received == result.sent
    assert result.rate > 0


def test_qos1_window_gets_every_puback_via_mosquitto(mosquitto: brokers.RunningBroker) -> None:
    target = loadgen.Target(mosquitto.host, mosquitto.port)
    result = asyncio.run(loadgen.qos1_flow(target, window=10, duration=0.3))
    assert result.sent > 10
    assert result.acknowledged == result.sent
    assert result.received == result.sent


def test_idle_connections_raise_mosquitto_rss(mosquitto: brokers.RunningBroker) -> None:
    target = loadgen.Target(mosquitto.host, mosquitto.port)
    result = asyncio.run(loadgen.idle_connections(target, mosquitto.pid, 50))
    assert result.connections == 50
    assert result.rss_before > 0
    assert result.rss_after >= result.rss_before


def test_paho_client_reads_loadgen_payloads(mosquitto: brokers.RunningBroker) -> None:
    """A real MQTT client decodes what the load generator encodes."""
    subscribed = threading.Event()
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-check")
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda _client, _userdata, message: messages.put(message)
    client.on_connect = lambda _client, *args: _client.subscribe("bench/fanin", qos=0)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "paho got no SUBACK from mosquitto within 10 s"
        target = loadgen.Target(mosquitto.host, mosquitto.port)
        result = asyncio.run(loadgen.qos0_flow(target, "fanin", 1, 0, duration=0.05))
        first = messages.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert result.sent > 0
    assert first.topic == "bench/fanin"
    assert first.payload == b"x" * loadgen.PAYLOAD_SIZE
    assert first.qos == 0
    assert first.retain is False
