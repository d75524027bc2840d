"""Encode MQTT packets to bytes and decode them back, without any I/O.

`PacketReader` is fed bytes as they arrive and returns the complete packets they finish.
Every problem with the input raises `ProtocolError` (or its subclass
`UnsupportedProtocolError`), never another exception, so a server can close one bad
connection and carry on.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from broker.packets import (
    PROTOCOL_NAMES,
    SUBACK_FAILURE,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    ProtocolLevel,
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

# The largest remaining length that four length bytes can hold (MQTT 3.1.1, 2.2.3).
MAX_REMAINING_LENGTH = 268_435_455

# A fixed header is one type byte plus at most four remaining-length bytes.
MAX_FIXED_HEADER_SIZE = 5

# The largest packet MQTT allows; a reader's own limit is usually far lower.
MAX_PACKET_SIZE = MAX_FIXED_HEADER_SIZE + MAX_REMAINING_LENGTH

# Fixed-header flags (the low nibble) that MQTT 3.1.1 requires for each type except PUBLISH.
REQUIRED_FLAGS = {packet_type: 0 for packet_type in PacketType}
REQUIRED_FLAGS[PacketType.PUBREL] = 0b0010
REQUIRED_FLAGS[PacketType.SUBSCRIBE] = 0b0010
REQUIRED_FLAGS[PacketType.UNSUBSCRIBE] = 0b0010

_UINT16 = struct.Struct(">H")


class ProtocolError(Exception):
    """The bytes are not a valid MQTT packet; `reason` describes the problem in a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedProtocolError(ProtocolError):
    """A CONNECT asked for a protocol name or level this codec does not decode.

    A server replies with CONNACK return code 1 and then closes the connection.
    """

    def __init__(self, protocol_name: str, protocol_level: int) -> None:
        super().__init__(f"CONNECT asks for protocol {protocol_name!r} level {protocol_level}, which is not supported.")
        self.protocol_name = protocol_name
        self.protocol_level = protocol_level


# Step 1: the pieces every packet is made of.


def encode_remaining_length(length: int) -> bytes:
    """Encode a remaining length as MQTT's variable byte integer (one to four bytes)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError(f"Remaining length {length} is outside 0 to {MAX_REMAINING_LENGTH}.")
    if length < 128:
        return bytes((length,))
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        if length:
            encoded.append(digit | 0x80)
        else:
            encoded.append(digit)
            return bytes(encoded)


def decode_remaining_length(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """Decode the remaining length that starts at `data[start]`.

    Return (length, index after the length), or None when `data` ends before the last
    length byte. Raise ProtocolError when a fifth length byte would be needed.
    """
    length = 0
    shift = 0
    index = start
    end = len(data)
    while True:
        if index >= end:
            return None
        byte = data[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, index
        shift += 7
        if shift == 28:
            raise ProtocolError("The remaining length uses more than four bytes.")


def encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _UINT16.pack(len(raw)) + raw


def encode_binary(data: bytes) -> bytes:
    return _UINT16.pack(len(data)) + data


def _fixed_header(first_byte: int, remaining_length: int) -> bytes:
    if remaining_length < 128:
        return bytes((first_byte, remaining_length))
    return bytes((first_byte,)) + encode_remaining_length(remaining_length)


def _read_uint16(body: bytes, pos: int, what: str) -> tuple[int, int]:
    if pos + 2 > len(body):
        raise ProtocolError(f"The packet ends before its {what}.")
    return _UINT16.unpack_from(body, pos)[0], pos + 2


def _read_binary(body: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = _read_uint16(body, pos, f"{what} length")
    end = pos + length
    if end > len(body):
        raise ProtocolError(f"The {what} claims {length} bytes but only {len(body) - pos} remain.")
    return body[pos:end], end


def _read_string(body: bytes, pos: int, what: str) -> tuple[str, int]:
    raw, pos = _read_binary(body, pos, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"The {what} is not valid UTF-8.") from None
    if "\x00" in text:
        raise ProtocolError(f"The {what} contains the character U+0000.")
    return text, pos


def _read_packet_id(body: bytes, pos: int) -> tuple[int, int]:
    packet_id, pos = _read_uint16(body, pos, "packet identifier")
    if packet_id == 0:
        raise ProtocolError("The packet identifier is 0; it must be between 1 and 65535.")
    return packet_id, pos


def _expect_end(body: bytes, pos: int, packet_type: PacketType) -> None:
    if pos != len(body):
        raise ProtocolError(f"{packet_type.name} has {len(body) - pos} unexpected bytes at its end.")


# Step 2: encoders, one per packet type.


def encode_publish_head(topic: bytes, payload_length: int, qos: int, retain: bool, dup: bool = False) -> bytes:
    """Encode a PUBLISH up to, not including, its packet identifier.

    `topic` is the UTF-8 topic name. The caller appends the two packet identifier bytes
    (QoS 1 and 2 only) and the payload, so one head serves many deliveries.
    """
    first = 0x30 | (qos << 1)
    if dup:
        first |= 0x08
    if retain:
        first |= 0x01
    remaining = 2 + len(topic) + (2 if qos else 0) + payload_length
    return _fixed_header(first, remaining) + _UINT16.pack(len(topic)) + topic


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    payload = [encode_string(packet.client_id)]
    if packet.will is not None:
        flags |= 0x04 | (packet.will.qos << 3) | (0x20 if packet.will.retain else 0)
        payload += [encode_string(packet.will.topic), encode_binary(packet.will.payload)]
    if packet.username is not None:
        flags |= 0x80
        payload.append(encode_string(packet.username))
    if packet.password is not None:
        flags |= 0x40
        payload.append(encode_binary(packet.password))
    variable = encode_string(packet.protocol_name) + bytes((packet.protocol_level, flags)) + _UINT16.pack(packet.keepalive)
    body = variable + b"".join(payload)
    return _fixed_header(0x10, len(body)) + body


def _encode_connack(packet: Connack) -> bytes:
    return bytes((0x20, 2, 1 if packet.session_present else 0, packet.return_code))


def _encode_publish(packet: Publish) -> bytes:
    topic = packet.topic.encode("utf-8")
    head = encode_publish_head(topic, len(packet.payload), packet.qos, packet.retain, packet.dup)
    if packet.qos:
        if packet.packet_id is None:
            raise ValueError(f"A QoS {packet.qos} PUBLISH needs a packet identifier.")
        return head + _UINT16.pack(packet.packet_id) + packet.payload
    return head + packet.payload


def _encode_packet_id_only(first_byte: int) -> Callable[[Puback | Pubrec | Pubrel | Pubcomp | Unsuback], bytes]:
    def encode_packet(packet: Puback | Pubrec | Pubrel | Pubcomp | Unsuback) -> bytes:
        return bytes((first_byte, 2)) + _UINT16.pack(packet.packet_id)

    return encode_packet


def _encode_subscribe(packet: Subscribe) -> bytes:
    body = _UINT16.pack(packet.packet_id) + b"".join(
        encode_string(topic_filter) + bytes((qos,)) for topic_filter, qos in packet.subscriptions
    )
    return _fixed_header(0x82, len(body)) + body


def _encode_suback(packet: Suback) -> bytes:
    body = _UINT16.pack(packet.packet_id) + bytes(packet.return_codes)
    return _fixed_header(0x90, len(body)) + body


def _encode_unsubscribe(packet: Unsubscribe) -> bytes:
    body = _UINT16.pack(packet.packet_id) + b"".join(encode_string(f) for f in packet.topic_filters)
    return _fixed_header(0xA2, len(body)) + body


def _encode_empty(first_byte: int) -> Callable[[Pingreq | Pingresp | Disconnect], bytes]:
    encoded = bytes((first_byte, 0))
    return lambda packet: encoded


_ENCODERS: dict[type, Callable] = {
    Connect: _encode_connect,
    Connack: _encode_connack,
    Publish: _encode_publish,
    Puback: _encode_packet_id_only(0x40),
    Pubrec: _encode_packet_id_only(0x50),
    Pubrel: _encode_packet_id_only(0x62),
    Pubcomp: _encode_packet_id_only(0x70),
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_packet_id_only(0xB0),
    Pingreq: _encode_empty(0xC0),
    Pingresp: _encode_empty(0xD0),
    Disconnect: _encode_empty(0xE0),
}


def encode(packet: Packet) -> bytes:
    """Encode one packet, fixed header included."""
    return _ENCODERS[type(packet)](packet)


# Step 3: decoders, one per packet type. Each receives the fixed header's flags and the body.


def _decode_connect(flags: int, body: bytes) -> Connect:
    protocol_name, pos = _read_string(body, 0, "protocol name")
    if pos + 4 > len(body):
        raise ProtocolError("CONNECT ends before its protocol level, flags and keepalive.")
    protocol_level = body[pos]
    if protocol_level not in PROTOCOL_NAMES.get(protocol_name, ()) or protocol_level == ProtocolLevel.MQTT_5_0:
        # NOTE: MQTT 5.0 CONNECT carries properties that this codec does not decode yet.
        raise UnsupportedProtocolError(protocol_name, protocol_level)
    connect_flags = body[pos + 1]
    keepalive = _UINT16.unpack_from(body, pos + 2)[0]
    pos += 4

    if connect_flags & 0x01:
        raise ProtocolError("The reserved bit of the CONNECT flags is set.")
    will_flag = bool(connect_flags & 0x04)
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = bool(connect_flags & 0x20)
    has_password = bool(connect_flags & 0x40)
    has_username = bool(connect_flags & 0x80)
    if will_qos == 3:
        raise ProtocolError("The CONNECT will QoS is 3; it must be 0, 1 or 2.")
    if not will_flag and (will_qos or will_retain):
        raise ProtocolError("The CONNECT flags set a will QoS or will retain without the will flag.")
    if has_password and not has_username:
        raise ProtocolError("The CONNECT flags set a password without a user name.")

    client_id, pos = _read_string(body, pos, "client identifier")
    will = None
    if will_flag:
        will_topic, pos = _read_string(body, pos, "will topic")
        will_payload, pos = _read_binary(body, pos, "will message")
        will = Will(will_topic, will_payload, will_qos, will_retain)
    username = password = None
    if has_username:
        username, pos = _read_string(body, pos, "user name")
    if has_password:
        password, pos = _read_binary(body, pos, "password")
    _expect_end(body, pos, PacketType.CONNECT)
    return Connect(
        client_id=client_id,
        clean_session=bool(connect_flags & 0x02),
        keepalive=keepalive,
        protocol_name=protocol_name,
        protocol_level=protocol_level,
        will=will,
        username=username,
        password=password,
    )


def _decode_connack(flags: int, body: bytes) -> Connack:
    if len(body) != 2:
        raise ProtocolError(f"CONNACK has {len(body)} bytes after its fixed header; it must have 2.")
    if body[0] & 0xFE:
        raise ProtocolError("The reserved bits of the CONNACK acknowledge flags are set.")
    return Connack(session_present=bool(body[0]), return_code=body[1])


def _decode_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH has QoS 3; it must be 0, 1 or 2.")
    dup = bool(flags & 0x08)
    if dup and not qos:
        raise ProtocolError("A QoS 0 PUBLISH has the DUP flag set.")
    topic, pos = _read_string(body, 0, "topic name")
    packet_id = None
    if qos:
        packet_id, pos = _read_packet_id(body, pos)
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), dup, packet_id)


def _decode_packet_id_only(cls: type) -> Callable[[int, bytes], Puback | Pubrec | Pubrel | Pubcomp | Unsuback]:
    def decode_packet(flags: int, body: bytes) -> Puback | Pubrec | Pubrel | Pubcomp | Unsuback:
        packet_id, pos = _read_packet_id(body, 0)
        _expect_end(body, pos, cls.type)
        return cls(packet_id)

    return decode_packet


def _decode_subscribe(flags: int, body: bytes) -> Subscribe:
    packet_id, pos = _read_packet_id(body, 0)
    subscriptions = []
    while pos < len(body):
        topic_filter, pos = _read_string(body, pos, "topic filter")
        if pos >= len(body):
            raise ProtocolError(f"SUBSCRIBE ends before the requested QoS of {topic_filter!r}.")
        qos = body[pos]
        pos += 1
        if qos > 2:
            raise ProtocolError(f"SUBSCRIBE requests QoS byte {qos:#04x} for {topic_filter!r}; it must be 0, 1 or 2.")
        subscriptions.append((topic_filter, qos))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE contains no topic filter.")
    return Subscribe(packet_id, tuple(subscriptions))


def _decode_suback(flags: int, body: bytes) -> Suback:
    packet_id, pos = _read_packet_id(body, 0)
    return_codes = tuple(body[pos:])
    if not return_codes:
        raise ProtocolError("SUBACK contains no return code.")
    for code in return_codes:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise ProtocolError(f"SUBACK contains the return code {code:#04x}, which MQTT 3.1.1 does not define.")
    return Suback(packet_id, return_codes)


def _decode_unsubscribe(flags: int, body: bytes) -> Unsubscribe:
    packet_id, pos = _read_packet_id(body, 0)
    topic_filters = []
    while pos < len(body):
        topic_filter, pos = _read_string(body, pos, "topic filter")
        topic_filters.append(topic_filter)
    if not topic_filters:
        raise ProtocolError("UNSUBSCRIBE contains no topic filter.")
    return Unsubscribe(packet_id, tuple(topic_filters))


def _decode_empty(cls: type) -> Callable[[int, bytes], Pingreq | Pingresp | Disconnect]:
    def decode_packet(flags: int, body: bytes) -> Pingreq | Pingresp | Disconnect:
        _expect_end(body, 0, cls.type)
        return cls()

    return decode_packet


_DECODERS: dict[int, Callable[[int, bytes], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBLISH: _decode_publish,
    PacketType.PUBACK: _decode_packet_id_only(Puback),
    PacketType.PUBREC: _decode_packet_id_only(Pubrec),
    PacketType.PUBREL: _decode_packet_id_only(Pubrel),
    PacketType.PUBCOMP: _decode_packet_id_only(Pubcomp),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_packet_id_only(Unsuback),
    PacketType.PINGREQ: _decode_empty(Pingreq),
    PacketType.PINGRESP: _decode_empty(Pingresp),
    PacketType.DISCONNECT: _decode_empty(Disconnect),
}


def check_first_byte(first_byte: int) -> None:
    """Raise ProtocolError for a reserved packet type or wrong fixed-header flags."""
    packet_type = first_byte >> 4
    if packet_type == 0 or packet_type == 15:
        raise ProtocolError(f"The packet type {packet_type} is reserved.")
    if packet_type != PacketType.PUBLISH:
        flags = first_byte & 0x0F
        required = REQUIRED_FLAGS[packet_type]
        if flags != required:
            raise ProtocolError(
                f"{PacketType(packet_type).name} has fixed-header flags {flags:#06b}; they must be {required:#06b}."
            )


def decode_packet(first_byte: int, body: bytes) -> Packet:
    """Decode one packet from its first byte and the bytes after its remaining length."""
    check_first_byte(first_byte)
    return _DECODERS[first_byte >> 4](first_byte & 0x0F, body)


def decode(data: bytes) -> Packet:
    """Decode exactly one complete packet; raise ProtocolError for anything else."""
    if not data:
        raise ProtocolError("There are no bytes to decode.")
    check_first_byte(data[0])
    header = decode_remaining_length(data, 1)
    if header is None:
        raise ProtocolError("The data ends inside the remaining length.")
    length, start = header
    if len(data) - start != length:
        raise ProtocolError(f"The remaining length is {length} but {len(data) - start} bytes follow it.")
    return decode_packet(data[0], bytes(data[start:]))


# Step 4: the incremental reader.


class PacketReader:
    """Collect bytes from a stream and return each packet once all its bytes arrived.

    The size check runs as soon as a fixed header is complete, so an oversized packet is
    rejected before its body is buffered.
    """

    __slots__ = ("max_packet_size", "_buffer")

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE) -> None:
        self.max_packet_size = max_packet_size
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete packet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        """Add `data` and return the packets it completes, oldest first."""
        buffer = self._buffer + data if self._buffer else data
        end = len(buffer)
        packets = []
        pos = 0
        while end - pos >= 2:
            first_byte = buffer[pos]
            check_first_byte(first_byte)
            header = decode_remaining_length(buffer, pos + 1)
            if header is None:
                break
            length, start = header
            size = start - pos + length
            if size > self.max_packet_size:
                raise ProtocolError(f"The packet is {size} bytes, above the limit of {self.max_packet_size} bytes.")
            if start + length > end:
                break
            packets.append(_DECODERS[first_byte >> 4](first_byte & 0x0F, bytes(buffer[start:start + length])))
            pos = start + length
        self._buffer = bytes(buffer[pos:]) if pos < end else b""
        return packets
