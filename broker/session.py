"""Per-client MQTT session state, without I/O.

A `Session` tracks one client id's subscriptions, its QoS 1 and 2 messages in flight in
both directions, and the messages queued for it. Methods return the encoded bytes the
server should write, so the same logic runs under any transport and in tests.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator

from broker.codec import encode_publish_head

_UINT16 = struct.Struct(">H")

# Packet identifiers are 16-bit and 0 is not allowed (MQTT 3.1.1, 2.3.1).
MAX_PACKET_ID = 65535

# A connected client's queue is congested at 1/2 of max_queued and drained again at 1/4.
# The server stops reading publishers while a subscriber is congested. The free half takes
# the messages already on their way, one per publisher and per fan-out in progress. The gap
# between the two marks keeps publishers from being paused and resumed for every message.
QUEUE_HIGH_WATER_DIVISOR = 2
QUEUE_LOW_WATER_DIVISOR = 4


def encode_ack(first_byte: int, packet_id: int) -> bytes:
    """Encode PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70) for `packet_id`."""
    return bytes((first_byte, 2)) + _UINT16.pack(packet_id)


PUBACK = 0x40
PUBREC = 0x50
PUBREL = 0x62
PUBCOMP = 0x70


class Message:
    """An application message as the router passes it on, with its PUBLISH encoding cached per QoS.

    One Message is shared by every subscriber a PUBLISH fans out to, so the topic and the
    fixed header are encoded once and reused for each delivery. Only a redelivery with DUP
    set is encoded anew.
    """

    __slots__ = ("topic", "payload", "qos", "retain", "_topic_bytes", "_encoded")

    def __init__(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self._topic_bytes: bytes | None = None
        # Index 0 is the whole QoS 0 packet. Indexes 1 and 2 are heads without the packet id.
        self._encoded: list[bytes | None] = [None, None, None]

    def encode(self, qos: int, packet_id: int = 0, dup: bool = False) -> bytes:
        """Encode this message as a PUBLISH at `qos`; QoS 1 and 2 need `packet_id`."""
        if dup:
            head = encode_publish_head(self._topic(), len(self.payload), qos, self.retain, dup=True)
            return head + _UINT16.pack(packet_id) + self.payload
        encoded = self._encoded[qos]
        if encoded is None:
            encoded = encode_publish_head(self._topic(), len(self.payload), qos, self.retain)
            if not qos:
                encoded += self.payload
            self._encoded[qos] = encoded
        if not qos:
            return encoded
        return encoded + _UINT16.pack(packet_id) + self.payload

    def with_retain(self, retain: bool) -> Message:
        """Return a copy of this message with the RETAIN flag set to `retain`."""
        return Message(self.topic, self.payload, self.qos, retain)

    def _topic(self) -> bytes:
        if self._topic_bytes is None:
            self._topic_bytes = self.topic.encode("utf-8")
        return self._topic_bytes

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.payload)} bytes, qos={self.qos}, retain={self.retain})"


class Session:
    """State of one client id, kept across connections unless the client asked for a clean session.

    Outgoing QoS 1 and 2 messages go in flight up to `max_inflight`, and the rest wait in a
    queue of at most `max_queued` messages, which also keeps messages for an offline client.
    Past that bound the oldest queued message is dropped.
    """

    __slots__ = (
        "client_id", "clean_session", "subscriptions", "connection", "max_inflight", "max_queued",
        "queue_high_water", "queue_low_water", "inflight", "queue", "incoming_qos2", "dropped", "_next_packet_id",
    )

    def __init__(self, client_id: str, clean_session: bool, max_inflight: int, max_queued: int) -> None:
        self.client_id = client_id
        self.clean_session = clean_session
        # Topic filter -> granted QoS.
        self.subscriptions: dict[str, int] = {}
        # The live connection object while the client is connected; the server sets it.
        self.connection: object | None = None
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.queue_high_water = max(1, max_queued // QUEUE_HIGH_WATER_DIVISOR)
        self.queue_low_water = max_queued // QUEUE_LOW_WATER_DIVISOR
        # Packet id -> (message, QoS, released). `released` is True once PUBREC arrived and
        # PUBREL went out, so only PUBCOMP is still awaited. Insertion order is send order.
        self.inflight: dict[int, tuple[Message, int, bool]] = {}
        self.queue: deque[tuple[Message, int]] = deque()
        # Packet ids of QoS 2 PUBLISH packets received and acknowledged with PUBREC but not yet released.
        self.incoming_qos2: set[int] = set()
        # QoS 1 and 2 messages dropped because the queue was full.
        self.dropped = 0
        self._next_packet_id = 1

    # Outgoing messages, server to client.

    def deliver(self, message: Message, qos: int) -> bytes | None:
        """Return the PUBLISH to write now, or queue the message and return None.

        QoS 0 is always returned; the server decides whether a slow client drops it.
        """
        if not qos:
            return message.encode(0)
        data = self.try_send(message, qos)
        if data is None:
            self.enqueue(message, qos)
        return data

    def try_send(self, message: Message, qos: int) -> bytes | None:
        """Put a QoS 1 or 2 message in flight and return its PUBLISH, or return None without queueing it.

        The message goes in flight only while the window has room and nothing is queued ahead of it.
        """
        if len(self.inflight) < self.max_inflight and not self.queue:
            return self._send(message, qos)
        return None

    def enqueue(self, message: Message, qos: int) -> bool:
        """Queue a QoS 1 or 2 message; return False when the oldest queued message was dropped for it."""
        if not qos:
            return True
        nothing_dropped = True
        if len(self.queue) >= self.max_queued:
            self.queue.popleft()
            self.dropped += 1
            nothing_dropped = False
        self.queue.append((message, qos))
        return nothing_dropped

    def is_congested(self) -> bool:
        """Tell whether the queue has reached its high-water mark, half of `max_queued` and at least 1."""
        return len(self.queue) >= self.queue_high_water

    def is_drained(self) -> bool:
        """Tell whether the queue is down to its low-water mark, a quarter of `max_queued`."""
        return len(self.queue) <= self.queue_low_water

    def send_queued(self) -> list[bytes]:
        """Move queued messages in flight while the window has room, and return their PUBLISH packets."""
        packets = []
        while self.queue and len(self.inflight) < self.max_inflight:
            message, qos = self.queue.popleft()
            packets.append(self._send(message, qos))
        return packets

    def on_puback(self, packet_id: int) -> bool:
        """Complete a QoS 1 delivery; return False for an unknown packet id."""
        entry = self.inflight.get(packet_id)
        if entry is None or entry[1] != 1:
            return False
        del self.inflight[packet_id]
        return True

    def on_pubrec(self, packet_id: int) -> bytes:
        """Record PUBREC for a QoS 2 delivery and return the PUBREL to send."""
        entry = self.inflight.get(packet_id)
        if entry is not None and entry[1] == 2:
            self.inflight[packet_id] = (entry[0], 2, True)
        return encode_ack(PUBREL, packet_id)

    def on_pubcomp(self, packet_id: int) -> bool:
        """Complete a QoS 2 delivery; return False for an unknown packet id."""
        entry = self.inflight.get(packet_id)
        if entry is None or not entry[2]:
            return False
        del self.inflight[packet_id]
        return True

    def resume(self) -> list[bytes]:
        """Return what a reconnecting client must receive again, then the queued messages.

        Unacknowledged PUBLISH packets are resent with DUP set, in their original order, and
        PUBREL is resent for QoS 2 messages that already got PUBREC.
        """
        packets = []
        for packet_id, (message, qos, released) in self.inflight.items():
            if released:
                packets.append(encode_ack(PUBREL, packet_id))
            else:
                packets.append(message.encode(qos, packet_id, dup=True))
        packets += self.send_queued()
        return packets

    # Incoming QoS 2, client to server.

    def on_publish_qos2(self, packet_id: int) -> bool:
        """Record a QoS 2 PUBLISH; return True when it is new and must be routed, False for a duplicate."""
        if packet_id in self.incoming_qos2:
            return False
        self.incoming_qos2.add(packet_id)
        return True

    def on_pubrel(self, packet_id: int) -> bytes:
        """Release a QoS 2 packet id and return the PUBCOMP to send."""
        self.incoming_qos2.discard(packet_id)
        return encode_ack(PUBCOMP, packet_id)

    # Internals.

    def _send(self, message: Message, qos: int) -> bytes:
        packet_id = self._allocate_packet_id()
        self.inflight[packet_id] = (message, qos, False)
        return message.encode(qos, packet_id)

    def _allocate_packet_id(self) -> int:
        # The window is far below 65535, so a free id is found within a few steps.
        packet_id = self._next_packet_id
        while packet_id in self.inflight:
            packet_id = packet_id % MAX_PACKET_ID + 1
        self._next_packet_id = packet_id % MAX_PACKET_ID + 1
        return packet_id


class SessionStore:
    """Sessions by client id: the live ones and the persistent ones whose client is offline."""

    __slots__ = ("max_inflight", "max_queued", "_sessions")

    def __init__(self, max_inflight: int, max_queued: int) -> None:
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, client_id: str) -> Session | None:
        return self._sessions.get(client_id)

    def open(self, client_id: str, clean_session: bool) -> tuple[Session, bool, Session | None]:
        """Return (session, session_present, discarded) for a CONNECT that was accepted.

        A clean session replaces any stored one; the replaced session is returned as
        `discarded` so the caller can drop its subscriptions. A persistent session resumes
        the stored state when there is one. The caller closes any connection still attached.
        """
        existing = self._sessions.get(client_id)
        if existing is not None and not clean_session and not existing.clean_session:
            return existing, True, None

        session = Session(client_id, clean_session, self.max_inflight, self.max_queued)
        self._sessions[client_id] = session
        return session, False, existing

    def close(self, session: Session) -> bool:
        """Detach a session whose connection ended; return True when its state was discarded.

        A clean session ends with its connection. A persistent one stays, so messages for
        it are queued until the client returns.
        """
        session.connection = None
        if session.clean_session:
            if self._sessions.get(session.client_id) is session:
                del self._sessions[session.client_id]
            return True
        return False
