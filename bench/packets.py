"""Encode the MQTT 3.1.1 packets that the load generator sends, ahead of time.

The load generator must not be the bottleneck, so it never parses a delivery one by one.
Every PUBLISH in one scenario has the same topic, payload and QoS, so each delivery has
the same length, and a receiver counts deliveries by dividing the bytes it read by that
length. The helpers here build those fixed-length packets and check framing by slicing
whole buffers at once.
"""

from __future__ import annotations

import struct

# Protocol name and level of MQTT 3.1.1 (section 3.1.2.1 and 3.1.2.2 of the standard).
PROTOCOL_NAME = b"MQTT"
PROTOCOL_LEVEL = 4

# Fixed-header first bytes (packet type in the high nibble, flags in the low one).
CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # SUBSCRIBE requires the flags 0b0010.
SUBACK = 0x90
DISCONNECT = 0xE0

# CONNACK and PUBACK are always 4 bytes; a SUBACK for one filter is 5 bytes.
CONNACK_LENGTH = 4
PUBACK_LENGTH = 4
SUBACK_ONE_FILTER_LENGTH = 5

# SUBACK return code for a rejected subscription.
SUBACK_FAILURE = 0x80

# Packet identifiers are 16-bit and 0 is not allowed.
MAX_PACKET_ID = 65_535

# The largest value the variable-length "remaining length" field can carry.
MAX_REMAINING_LENGTH = 268_435_455


class FramingError(ValueError):
    """Bytes from a broker that do not have the packet layout the scenario expects."""


def encode_remaining_length(length: int) -> bytes:
    """Encode `length` as MQTT's variable-length integer (7 bits a byte, low bits first)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(
            f"Remaining length {length} is outside 0..{MAX_REMAINING_LENGTH}; "
            "split the payload into smaller messages."
        )
    encoded = bytearray()
    while True:
        digit = length % 128
        length //= 128
        if length:
            encoded.append(digit | 0x80)
        else:
            encoded.append(digit)
            return bytes(encoded)


def decode_remaining_length(data: bytes, offset: int = 1) -> tuple[int, int]:
    """Decode the remaining length that starts at `offset`; return (value, bytes used)."""
    value = 0
    for index in range(4):
        if offset + index >= len(data):
            raise FramingError(f"Remaining length at offset {offset} is cut off after {index} bytes.")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    raise FramingError(f"Remaining length at offset {offset} is longer than 4 bytes.")


def encode_string(text: str) -> bytes:
    """Encode a UTF-8 string with its 16-bit big-endian length prefix."""
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"String of {len(raw)} UTF-8 bytes is longer than MQTT's 65535-byte limit.")
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    """Prefix `body` with the fixed header: first byte and remaining length."""
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


def connect(client_id: str, keepalive: int = 0, clean_session: bool = True) -> bytes:
    """Encode a CONNECT without will, username or password.

    A keepalive of 0 turns the broker's keepalive check off, so idle clients stay connected.
    """
    if not 0 <= keepalive <= 0xFFFF:
        raise ValueError(f"Keepalive {keepalive} s is outside 0..65535.")
    flags = 0x02 if clean_session else 0x00
    body = (
        encode_string(PROTOCOL_NAME.decode())
        + bytes((PROTOCOL_LEVEL, flags))
        + struct.pack("!H", keepalive)
        + encode_string(client_id)
    )
    return packet(CONNECT, body)


def subscribe(packet_id: int, topic_filter: str, qos: int) -> bytes:
    """Encode a SUBSCRIBE for one topic filter."""
    check_packet_id(packet_id)
    check_qos(qos, allowed=(0, 1, 2))
    body = struct.pack("!H", packet_id) + encode_string(topic_filter) + bytes((qos,))
    return packet(SUBSCRIBE, body)


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    """Encode a PUBLISH at QoS 0 or 1; QoS 1 needs a packet identifier."""
    check_qos(qos, allowed=(0, 1))
    body = encode_string(topic)
    if qos:
        check_packet_id(packet_id)
        body += struct.pack("!H", packet_id)
    return packet(PUBLISH | (qos << 1), body + payload)


def puback(packet_id: int) -> bytes:
    """Encode a PUBACK for `packet_id`."""
    check_packet_id(packet_id)
    return bytes((PUBACK, 2)) + struct.pack("!H", packet_id)


def disconnect() -> bytes:
    """Encode a DISCONNECT."""
    return bytes((DISCONNECT, 0))


def check_packet_id(packet_id: int) -> None:
    if not 1 <= packet_id <= MAX_PACKET_ID:
        raise ValueError(f"Packet identifier {packet_id} is outside 1..{MAX_PACKET_ID}.")


def check_qos(qos: int, allowed: tuple[int, ...]) -> None:
    if qos not in allowed:
        raise ValueError(f"QoS {qos} is not supported here; use one of {allowed}.")


def packet_id_offset(publish_packet: bytes) -> int:
    """Return where the packet identifier sits in the QoS 1 PUBLISH `publish_packet`."""
    _, length_bytes = decode_remaining_length(publish_packet)
    topic_start = 1 + length_bytes
    (topic_length,) = struct.unpack_from("!H", publish_packet, topic_start)
    return topic_start + 2 + topic_length


def publish_run(topic: str, payload: bytes) -> bytes:
    """Encode QoS 1 PUBLISH packets with identifiers 1..65535, back to back.

    A publisher sends the next n messages as one slice of this buffer, so sending costs
    no encoding. Every packet has the same length, `len(result) // MAX_PACKET_ID`.
    """
    first = publish(topic, payload, qos=1, packet_id=1)
    length = len(first)
    offset = packet_id_offset(first)
    ids = struct.pack(f"!{MAX_PACKET_ID}H", *range(1, MAX_PACKET_ID + 1))

    run = bytearray(first * MAX_PACKET_ID)
    run[offset::length] = ids[0::2]
    run[offset + 1 :: length] = ids[1::2]
    return bytes(run)


def pubacks_for(deliveries: bytes | bytearray, packet_length: int, id_offset: int) -> bytes:
    """Build one PUBACK for each of the back-to-back QoS 1 PUBLISH packets in `deliveries`.

    `deliveries` must hold whole packets of `packet_length` bytes each.
    """
    count = len(deliveries) // packet_length
    acks = bytearray(PUBACK_LENGTH * count)
    acks[0::4] = bytes((PUBACK,)) * count
    acks[1::4] = b"\x02" * count
    acks[2::4] = deliveries[id_offset : count * packet_length : packet_length]
    acks[3::4] = deliveries[id_offset + 1 : count * packet_length : packet_length]
    return bytes(acks)


def check_first_bytes(data: bytes | bytearray, packet_length: int, first_byte: int) -> None:
    """Raise FramingError unless every `packet_length`-byte record in `data` starts with `first_byte`."""
    end = len(data) - len(data) % packet_length
    heads = data[0:end:packet_length]
    if heads.count(first_byte) != len(heads):
        position = next(i for i, head in enumerate(heads) if head != first_byte)
        raise FramingError(
            f"Expected packets of {packet_length} bytes starting with 0x{first_byte:02X}, "
            f"but packet {position} starts with 0x{heads[position]:02X}; the broker sent "
            "another packet type or changed the flags (retain, DUP, QoS)."
        )


def parse_connack(data: bytes | bytearray) -> int:
    """Return the return code of the CONNACK at the start of `data` (0 means accepted)."""
    if len(data) < CONNACK_LENGTH:
        raise FramingError(f"CONNACK needs {CONNACK_LENGTH} bytes, got {len(data)}.")
    if data[0] != CONNACK or data[1] != 2:
        raise FramingError(f"Expected a CONNACK (20 02), got {bytes(data[:2]).hex(' ')}.")
    return data[3]


def parse_suback(data: bytes | bytearray) -> int:
    """Return the granted QoS of the one-filter SUBACK at the start of `data`."""
    if len(data) < SUBACK_ONE_FILTER_LENGTH:
        raise FramingError(f"SUBACK needs {SUBACK_ONE_FILTER_LENGTH} bytes, got {len(data)}.")
    if data[0] != SUBACK or data[1] != 3:
        raise FramingError(f"Expected a SUBACK for one filter (90 03), got {bytes(data[:2]).hex(' ')}.")
    return data[4]
