"""The MQTT codec on its own: round trips, remaining lengths and rejected input."""

from __future__ import annotations

import pytest

from broker import codec
from broker.codec import MAX_REMAINING_LENGTH, PacketReader, ProtocolError, UnsupportedProtocolError
from broker.packets import (
    SUBACK_FAILURE,
    Connack,
    ConnackReturnCode,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)

EVERY_PACKET = [
    Connect(client_id="sensor-1"),
    Connect(client_id="", clean_session=True, keepalive=65535),
    Connect(
        client_id="c",
        clean_session=False,
        keepalive=30,
        will=Will("status/c", b"gone", qos=2, retain=True),
        username="alice",
        password=b"\x00secret\xff",
    ),
    Connect(client_id="old", protocol_name="MQIsdp", protocol_level=3, username="bob"),
    Connack(session_present=True, return_code=ConnackReturnCode.ACCEPTED),
    Connack(session_present=False, return_code=ConnackReturnCode.NOT_AUTHORIZED),
    Publish("a/b", b"hello"),
    Publish("a/b", b"", qos=1, retain=True, packet_id=1),
    Publish("caf\u00e9/\u00fc", b"x" * 300, qos=2, dup=True, packet_id=65535),
    Puback(7),
    Pubrec(8),
    Pubrel(9),
    Pubcomp(10),
    Subscribe(11, (("a/+", 0), ("#", 1), ("$SYS/#", 2))),
    Suback(11, (0, 1, 2, SUBACK_FAILURE)),
    Unsubscribe(12, ("a/+", "#")),
    Unsuback(12),
    Pingreq(),
    Pingresp(),
    Disconnect(),
]


@pytest.mark.parametrize("packet", EVERY_PACKET, ids=lambda p: type(p).__name__)
def test_every_packet_round_trips(packet):
    encoded = codec.encode(packet)

    assert codec.decode(encoded) == packet
    assert PacketReader().feed(encoded) == [packet]


@pytest.mark.parametrize("packet", EVERY_PACKET, ids=lambda p: type(p).__name__)
def test_reader_accepts_packet_one_byte_at_a_time(packet):
    reader = PacketReader()
    decoded = []
    for byte in codec.encode(packet):
        decoded += reader.feed(bytes((byte,)))

    assert decoded == [packet]
    assert reader.buffered == 0


def test_reader_returns_several_packets_from_one_chunk():
    stream = b"".join(codec.encode(p) for p in EVERY_PACKET)

    assert PacketReader().feed(stream) == EVERY_PACKET


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_edges(length, encoded):
    assert codec.encode_remaining_length(length) == encoded
    assert codec.decode_remaining_length(b"\x30" + encoded, 1) == (length, 1 + len(encoded))


def test_remaining_length_above_maximum_is_rejected_by_encoder():
    with pytest.raises(ValueError, match="268435455"):
        codec.encode_remaining_length(MAX_REMAINING_LENGTH + 1)


def test_remaining_length_of_five_bytes_is_rejected():
    with pytest.raises(ProtocolError, match="more than four bytes"):
        codec.decode_remaining_length(b"\x30\xff\xff\xff\xff\x7f", 1)
    with pytest.raises(ProtocolError, match="more than four bytes"):
        PacketReader().feed(b"\x30\x80\x80\x80\x80\x01")


def test_incomplete_remaining_length_waits_for_more_bytes():
    assert codec.decode_remaining_length(b"\x30\x80\x80", 1) is None
    assert PacketReader().feed(b"\x30\x80\x80") == []


def test_publish_with_body_of_16384_bytes_round_trips():
    packet = Publish("t", b"p" * (16384 - 3))
    encoded = codec.encode(packet)

    assert encoded[1:4] == b"\x80\x80\x01"
    assert codec.decode(encoded) == packet


def test_reader_rejects_oversized_packet_before_its_body_arrives():
    reader = PacketReader(max_packet_size=100)
    header_only = b"\x30" + codec.encode_remaining_length(1000)

    with pytest.raises(ProtocolError, match="above the limit of 100 bytes"):
        reader.feed(header_only)


def test_reader_accepts_packet_at_exactly_the_size_limit():
    packet = Publish("t", b"x" * 95)
    encoded = codec.encode(packet)
    assert len(encoded) == 100

    assert PacketReader(max_packet_size=100).feed(encoded) == [packet]


def test_encode_publish_head_matches_full_encoding():
    payload = b"v" * 200
    head = codec.encode_publish_head(b"a/b", len(payload), qos=1, retain=False)

    assert head + b"\x00\x05" + payload == codec.encode(Publish("a/b", payload, qos=1, packet_id=5))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00", "packet type 0 is reserved"),
        (b"\xf0\x00", "packet type 15 is reserved"),
        (b"\xc1\x00", "PINGREQ has fixed-header flags"),
        (b"\x60\x02\x00\x01", "PUBREL has fixed-header flags"),
        (b"\x80\x06\x00\x01\x00\x01a\x00", "SUBSCRIBE has fixed-header flags"),
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x38\x03\x00\x01a", "QoS 0 PUBLISH has the DUP flag"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet identifier is 0"),
        (b"\x30\x04\x00\x02\xc3\x28", "not valid UTF-8"),
        (b"\x30\x04\x00\x02a\x00", "character U\\+0000"),
        (b"\x30\x04\x00\x09ab", "claims 9 bytes"),
        (b"\x82\x03\x00\x01\x00", "ends before"),
        (b"\x82\x02\x00\x01", "no topic filter"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "QoS byte 0x03"),
        (b"\x82\x06\x00\x01\x00\x01a\x40", "QoS byte 0x40"),
        (b"\xa2\x02\x00\x01", "no topic filter"),
        (b"\x90\x03\x00\x01\x05", "return code 0x05"),
        (b"\x20\x02\x02\x00", "reserved bits of the CONNACK"),
        (b"\x20\x01\x00", "must have 2"),
        (b"\x40\x03\x00\x01\x00", "unexpected bytes"),
        (b"\xc0\x01\x00", "unexpected bytes"),
        (b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x00\x00\x00", "reserved bit of the CONNECT flags"),
        (b"\x10\x0c\x00\x04MQTT\x04\x18\x00\x00\x00\x00", "will QoS is 3"),
        (b"\x10\x0c\x00\x04MQTT\x04\x20\x00\x00\x00\x00", "without the will flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x40\x00\x00\x00\x00", "password without a user name"),
        (b"\x10\x07\x00\x04MQTT\x04", "ends before its protocol level"),
        (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x00x", "unexpected bytes"),
    ],
)
def test_malformed_packet_raises_protocol_error(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        codec.decode(data)
    with pytest.raises(ProtocolError, match=reason):
        PacketReader().feed(data)


@pytest.mark.parametrize(
    ("name", "level"),
    [("MQTT", 3), ("MQTT", 5), ("MQTT", 6), ("MQIsdp", 4), ("HTTP", 4)],
)
def test_connect_with_unsupported_protocol_raises_its_own_error(name, level):
    packet = codec.encode(Connect(client_id="c", protocol_name=name, protocol_level=level))

    with pytest.raises(UnsupportedProtocolError) as raised:
        codec.decode(packet)

    assert raised.value.protocol_level == level
    assert raised.value.protocol_name == name


def test_decode_rejects_trailing_or_missing_bytes():
    encoded = codec.encode(Puback(1))

    with pytest.raises(ProtocolError, match="remaining length is 2 but 3 bytes"):
        codec.decode(encoded + b"\x00")
    with pytest.raises(ProtocolError, match="remaining length is 2 but 1 bytes"):
        codec.decode(encoded[:-1])
    with pytest.raises(ProtocolError, match="no bytes"):
        codec.decode(b"")
