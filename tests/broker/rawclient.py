"""A raw-socket MQTT 3.1.1 client for black-box tests of a broker.

It sends the test's bytes unchanged and splits what the broker sends back into control
packets. The few encoders here build well-formed packets for setting up a test, such as
a subscriber or a publisher, and for cases that differ from a valid packet in one field.
The conformance modules write the packets under test as literal bytes instead. None of
this uses the broker's own codec, so a codec bug cannot hide on both sides.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

# Seconds a single wait for a packet, a close or a byte count may take before the test fails.
WAIT_TIMEOUT = 5.0

# Control packet types (MQTT 3.1.1, table 2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC",
    PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
}


class ConnectionClosed(ConnectionError):
    """The broker closed the connection while a packet was expected."""


def remaining_length(length: int) -> bytes:
    """Encode `length` as MQTT's variable-length Remaining Length (1 to 4 bytes)."""
    encoded = bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def string_field(value: str | bytes) -> bytes:
    """Encode a two-byte length prefix and the UTF-8 bytes (bytes are sent unchanged)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def control_packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + remaining_length(len(body)) + body


def connect_packet(client_id: str | bytes, *, clean_session: bool = True, keepalive: int = 60,
                   will: tuple[str, bytes, int, bool] | None = None,
                   username: str | None = None, password: str | bytes | None = None,
                   protocol_name: str = "MQTT", protocol_level: int = 4) -> bytes:
    """Encode a CONNECT, which is valid unless the test changes `protocol_name` or `protocol_level`.

    `will` is (topic, payload, qos, retain).
    """
    flags = 0x02 if clean_session else 0x00
    payload = string_field(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        payload += string_field(topic) + string_field(message)
    if username is not None:
        flags |= 0x80
        payload += string_field(username)
    if password is not None:
        flags |= 0x40
        payload += string_field(password)
    variable_header = string_field(protocol_name) + bytes([protocol_level, flags]) + struct.pack("!H", keepalive)
    return control_packet(CONNECT << 4, variable_header + payload)


def publish_packet(topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 1,
                   retain: bool = False, dup: bool = False) -> bytes:
    first_byte = PUBLISH << 4 | qos << 1 | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = string_field(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    return control_packet(first_byte, body + payload)


def subscribe_packet(packet_id: int, filters: list[tuple[str | bytes, int]]) -> bytes:
    body = struct.pack("!H", packet_id)
    for topic_filter, qos in filters:
        body += string_field(topic_filter) + bytes([qos])
    return control_packet(SUBSCRIBE << 4 | 0x02, body)


def unsubscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(string_field(f) for f in filters)
    return control_packet(UNSUBSCRIBE << 4 | 0x02, body)


def ack_packet(packet_type: int, packet_id: int) -> bytes:
    """Encode PUBACK, PUBREC, PUBREL (with its required flags 0b0010) or PUBCOMP."""
    flags = 0x02 if packet_type == PUBREL else 0x00
    return control_packet(packet_type << 4 | flags, struct.pack("!H", packet_id))


@dataclass(frozen=True)
class Packet:
    """One control packet as the broker sent it."""

    first_byte: int
    body: bytes

    @property
    def raw(self) -> bytes:
        return control_packet(self.first_byte, self.body)

    @property
    def packet_type(self) -> int:
        return self.first_byte >> 4

    @property
    def flags(self) -> int:
        return self.first_byte & 0x0F

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.packet_type, f"reserved type {self.packet_type}")

    @property
    def qos(self) -> int:
        return self.flags >> 1 & 0x03

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def topic(self) -> str:
        length = struct.unpack_from("!H", self.body)[0]
        return self.body[2:2 + length].decode("utf-8")

    @property
    def packet_id(self) -> int:
        """Packet Identifier of an acknowledgement, SUBACK or UNSUBACK, or of a QoS 1/2 PUBLISH."""
        if self.packet_type == PUBLISH:
            length = struct.unpack_from("!H", self.body)[0]
            return struct.unpack_from("!H", self.body, 2 + length)[0]
        return struct.unpack_from("!H", self.body)[0]

    @property
    def payload(self) -> bytes:
        length = struct.unpack_from("!H", self.body)[0]
        return self.body[2 + length + (2 if self.qos else 0):]

    def __repr__(self) -> str:
        return f"<{self.name} {self.raw.hex(' ')}>"


class RawConnection:
    """One TCP connection to a broker on which the test controls every byte."""

    def __init__(self, host: str, port: int) -> None:
        self.socket = socket.create_connection((host, port), timeout=WAIT_TIMEOUT)
        self.buffer = b""
        self.closed_by_peer = False
        # PUBLISH packets that arrived while an acknowledgement was awaited, returned first by read_packet.
        self.pending: deque[Packet] = deque()

    @property
    def local_port(self) -> int:
        """Port of this end of the connection, as the broker's log lines name the peer."""
        return self.socket.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def _fill(self, count: int, deadline: float) -> None:
        """Read until the buffer contains `count` bytes, raising ConnectionClosed or TimeoutError."""
        while len(self.buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Fewer than {count} bytes arrived in time; buffered {self.buffer.hex(' ')!r}.")
            self.socket.settimeout(remaining)
            try:
                chunk = self.socket.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                raise ConnectionClosed(f"The broker closed the connection; buffered {self.buffer.hex(' ')!r}.")
            self.buffer += chunk

    def read_packet(self, timeout: float = WAIT_TIMEOUT) -> Packet:
        """Read one control packet, raising ConnectionClosed on close and TimeoutError after `timeout`."""
        if self.pending:
            return self.pending.popleft()
        return self._read_wire_packet(timeout)

    def _read_wire_packet(self, timeout: float) -> Packet:
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        length, multiplier, index = 0, 1, 1
        while True:
            self._fill(index + 1, deadline)
            digit = self.buffer[index]
            length += (digit & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if not digit & 0x80:
                break
        self._fill(index + length, deadline)
        packet = Packet(self.buffer[0], self.buffer[index:index + length])
        self.buffer = self.buffer[index + length:]
        return packet

    def expect(self, packet_type: int, timeout: float = WAIT_TIMEOUT) -> Packet:
        packet = self.read_packet(timeout)
        assert packet.packet_type == packet_type, (
            f"Expected a {PACKET_NAMES[packet_type]} packet, but the broker sent {packet!r}."
        )
        return packet

    def expect_ack(self, packet_type: int, packet_id: int, timeout: float = WAIT_TIMEOUT) -> Packet:
        """Wait for the acknowledgement `packet_type` of `packet_id`, keeping PUBLISH packets that come first."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self._read_wire_packet(max(deadline - time.monotonic(), 0.001))
            if packet.packet_type == PUBLISH:
                self.pending.append(packet)
                continue
            expected = f"Expected {PACKET_NAMES[packet_type]} for packet {packet_id}, but the broker sent {packet!r}."
            assert packet.packet_type == packet_type, expected
            assert packet.packet_id == packet_id, expected
            return packet

    def read_until_closed(self, timeout: float = WAIT_TIMEOUT) -> tuple[bytes, bool]:
        """Return every byte the broker sends within `timeout` and whether it then closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.closed_by_peer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            readable, _, _ = select.select([self.socket], [], [], remaining)
            if not readable:
                break
            try:
                chunk = self.socket.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if chunk:
                self.buffer += chunk
            else:
                self.closed_by_peer = True
        received, self.buffer = self.buffer, b""
        return received, self.closed_by_peer

    def wait_closed(self, timeout: float = WAIT_TIMEOUT) -> bool:
        """Wait until the broker closes the connection, discarding what it sends meanwhile.

        Return False if the connection is still open after `timeout` seconds.
        """
        _, closed = self.read_until_closed(timeout)
        return closed

    def connect(self, client_id: str | bytes, *, expect_success: bool = True, **options) -> Packet:
        """Send a CONNECT built from `options` and return the CONNACK.

        With `expect_success`, fail unless the broker accepted the connection.
        """
        self.send(connect_packet(client_id, **options))
        connack = self.expect(CONNACK)
        if expect_success:
            assert connack.body[1] == 0, f"CONNACK for {client_id!r} refused the connection: {connack!r}."
        return connack

    def subscribe(self, packet_id: int, filters: list[tuple[str | bytes, int]]) -> list[int]:
        """Send SUBSCRIBE and return the SUBACK return codes."""
        self.send(subscribe_packet(packet_id, filters))
        suback = self.expect_ack(SUBACK, packet_id)
        return list(suback.body[2:])

    def unsubscribe(self, packet_id: int, filters: list[str]) -> None:
        self.send(unsubscribe_packet(packet_id, filters))
        self.expect_ack(UNSUBACK, packet_id)

    def publish(self, topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 1,
                retain: bool = False) -> None:
        """Publish and, for QoS 1 and 2, complete the acknowledgement flow."""
        self.send(publish_packet(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
        if qos == 1:
            self.expect_ack(PUBACK, packet_id)
        elif qos == 2:
            self.expect_ack(PUBREC, packet_id)
            self.send(ack_packet(PUBREL, packet_id))
            self.expect_ack(PUBCOMP, packet_id)

    def receive_publish(self, timeout: float = WAIT_TIMEOUT) -> Packet:
        """Read the next PUBLISH and acknowledge it as its QoS requires."""
        packet = self.expect(PUBLISH, timeout)
        if packet.qos == 1:
            self.send(ack_packet(PUBACK, packet.packet_id))
        elif packet.qos == 2:
            self.send(ack_packet(PUBREC, packet.packet_id))
            self.expect_ack(PUBREL, packet.packet_id)
            self.send(ack_packet(PUBCOMP, packet.packet_id))
        return packet

    def publishes_until(self, sentinel_topic: str, sentinel_payload: bytes | None = None,
                        timeout: float = WAIT_TIMEOUT) -> list[Packet]:
        """Receive and acknowledge PUBLISH packets and return those before the first sentinel.

        The sentinel is the first PUBLISH on `sentinel_topic`, with `sentinel_payload` if given.
        """
        deadline = time.monotonic() + timeout
        before = []
        while True:
            packet = self.receive_publish(max(deadline - time.monotonic(), 0.001))
            if packet.topic == sentinel_topic and sentinel_payload in (None, packet.payload):
                return before
            before.append(packet)

    def disconnect(self) -> None:
        """Send DISCONNECT and wait until the broker closes the connection."""
        self.send(b"\xe0\x00")
        _, closed = self.read_until_closed()
        assert closed, "The broker kept the connection open after DISCONNECT."

    def close(self) -> None:
        self.socket.close()


class BrokerAddress(Protocol):
    """Anything with a broker's host and port, such as a started test broker."""

    host: str
    port: int


class RawConnections:
    """Open raw connections and close them all at teardown.

    `host` and `port` set the address that `open()` and `connected()` use when no broker is
    given. Without them, every `open()` call must name its broker.
    """

    def __init__(self, host: str | None = None, port: int | None = None) -> None:
        self.host = host
        self.port = port
        self.connections: list[RawConnection] = []

    def open(self, broker: BrokerAddress | None = None) -> RawConnection:
        """Open a connection to `broker`, or to the address given at construction."""
        host, port = (self.host, self.port) if broker is None else (broker.host, broker.port)
        if host is None or port is None:
            raise ValueError(
                "RawConnections.open() was called without a broker, and the RawConnections object "
                "was created without a host and port. Pass the broker to open(), or pass host and port "
                "to RawConnections()."
            )
        connection = RawConnection(host, port)
        self.connections.append(connection)
        return connection

    def connected(self, client_id: str, **options) -> RawConnection:
        """Open a connection and complete CONNECT/CONNACK with `client_id`."""
        connection = self.open()
        connection.connect(client_id, **options)
        return connection

    def close_all(self) -> None:
        for connection in self.connections:
            connection.close()
