"""One client socket as an asyncio.Protocol: read packets, handle them and write replies.

Each socket gets one `Connection`, with one handler per packet type and the flow control
between publishers and congested subscribers. This module and `broker.server` are the
only ones that touch asyncio transports.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import deque

from broker.codec import PacketReader, ProtocolError, UnsupportedProtocolError, encode
from broker.core import Broker, Slot
from broker.packets import (
    SUBACK_FAILURE,
    Connack,
    ConnackReturnCode,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsubscribe,
)
from broker.session import PUBACK, PUBREC, Message, Session, encode_ack
from broker.topics import InvalidTopicError, validate_topic_filter, validate_topic_name

# The server's modules share one logger name, broker.server, as the log lines in docs/broker.md show.
logger = logging.getLogger("broker.server")

# Seconds a connected subscriber may stay congested before publishers stop waiting for it.
# While a subscriber's queue is over its high-water mark or its output buffer is full, the
# publishers that delivered to it are not read. Past this timeout they are read again, and
# the subscriber loses messages as an offline session does: the oldest queued QoS 1 and 2
# messages and new QoS 0 ones. So one stuck client delays publishers by at most this long,
# while a client that falls behind for a moment (a GC pause, a busy CPU) loses nothing.
STALLED_SUBSCRIBER_SECONDS = 2.0

# Client ids the broker assigns to clients that connect with an empty id and a clean session.
_assigned_ids = itertools.count(1)

PINGRESP_BYTES = encode(Pingresp())
UNSUBACK_FIRST_BYTE = 0xB0


class Connection(asyncio.Protocol):
    """One client socket: reads packets, runs them against the broker, writes replies."""

    __slots__ = (
        "broker", "transport", "peer", "reader", "slot", "opened_at", "last_read", "write_paused",
        "closing", "clean_disconnect", "backlog", "busy", "pending", "pending_size", "pending_limit",
        "throttled_by", "blocked_publishers", "stall_timer", "stalled",
    )

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown peer"
        self.reader: PacketReader | None = None
        self.slot: Slot | None = None
        self.opened_at = 0.0
        self.last_read = 0.0
        self.write_paused = False
        self.closing = False
        self.clean_disconnect = False
        # Packets read while a long fan-out of this client's PUBLISH is still running, or
        # while this client waits for a congested subscriber.
        self.backlog: deque[Packet] | None = None
        self.busy = False
        # Output not yet written: the chunks, their total size in bytes, and how many bytes
        # fit below outgoing_high_water beside what the transport already buffered.
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.pending_limit = broker.limits.outgoing_high_water
        # As a publisher: the congested subscriber this client waits for.
        self.throttled_by: Connection | None = None
        # As a subscriber: the publishers that wait for this client, and the timer that
        # stops their wait after STALLED_SUBSCRIBER_SECONDS.
        self.blocked_publishers: list[Connection] | None = None
        self.stall_timer: asyncio.TimerHandle | None = None
        # True once this subscriber stayed congested past the stall timer. Until it drains, no publisher waits for it.
        self.stalled = False

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        broker = self.broker
        self.opened_at = self.last_read = broker.loop.time()
        high_water = broker.limits.outgoing_high_water
        transport.set_write_buffer_limits(high=high_water, low=high_water // 4)
        self.reader = PacketReader(broker.limits.max_packet_size)
        broker.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        broker = self.broker
        self.last_read = broker.loop.time()
        broker.stats.bytes_received += len(data)
        try:
            packets = self.reader.feed(data)
        except UnsupportedProtocolError as error:
            self.reject_protocol(error)
            return
        except ProtocolError as error:
            self.fail(error.reason)
            return
        if self.busy or self.throttled_by is not None:
            self.backlog.extend(packets)
            return
        self.handle_packets(packets)
        broker.flush()
        if self.blocked_publishers is not None or self.stalled:
            self.check_drained()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        # The client reads slower than we write: stop reading its requests until it catches up.
        self.write_paused = True
        if not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closing:
            return
        self.resume_reading_if_free()
        slot = self.slot
        if slot is not None and slot.session is not None:
            self.send_all(slot.session.send_queued())
        self.broker.flush()
        if self.blocked_publishers is not None or self.stalled:
            self.check_drained()

    def connection_lost(self, exc: Exception | None) -> None:
        broker = self.broker
        broker.connections.discard(self)
        reader = self.reader
        if reader is not None and reader.buffered and not self.closing:
            logger.warning("The connection from %s closed in the middle of a packet, with %d bytes of it received.",
                           self.peer, reader.buffered)
            broker.stats.malformed_packets += 1
        self.closing = True
        self.reader = None
        self.backlog = None
        self.pending = []
        self.pending_size = 0
        if self.blocked_publishers is not None:
            self.release_publishers()
        slot = self.slot
        if slot is None:
            return
        self.slot = None
        session = slot.session
        if session is not None and session.connection is self:
            if broker.sessions.close(session):
                broker.router.drop_session(session)
        if not self.clean_disconnect:
            broker.publish_will(slot)
            broker.flush()
        slot.reset()
        broker.pool.release(slot)
        broker.stats.clients_connected -= 1

    # Writing and closing.

    def send(self, data: bytes) -> None:
        """Add `data` to the pending output, which the next Broker.flush writes."""
        if self.closing:
            return
        pending = self.pending
        if not pending:
            self.broker.dirty.append(self)
            self.pending_limit = self.broker.limits.outgoing_high_water - self.transport.get_write_buffer_size()
        pending.append(data)
        self.pending_size += len(data)

    def send_all(self, packets: list[bytes]) -> None:
        """Send PUBLISH packets and count them as sent messages."""
        if packets:
            data = b"".join(packets)
            self.send(data)
            self.broker.stats.messages_sent += len(packets)
            self.broker.stats.bytes_sent += len(data)

    def flush(self) -> None:
        """Write the pending output in one call."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        self.pending_size = 0
        self.pending_limit = self.broker.limits.outgoing_high_water
        self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        if self.blocked_publishers is not None and not self.closing:
            self.check_drained()

    def output_full(self) -> bool:
        """Tell whether the transport's buffer and the pending output reach outgoing_high_water."""
        return self.write_paused or self.pending_size > self.pending_limit

    def close(self) -> None:
        """Write the pending output, then close the socket once the transport has sent it."""
        if not self.closing:
            self.closing = True
            self.flush()
            self.transport.close()
            if self.blocked_publishers is not None:
                self.release_publishers()

    def fail(self, reason: str) -> None:
        """Close this connection for a protocol violation; other clients are not affected."""
        if self.closing:
            return
        slot = self.slot
        peer = f"client {slot.client_id!r} from {self.peer}" if slot else self.peer
        logger.warning("Closed the connection of %s: %s", peer, reason)
        self.broker.stats.malformed_packets += 1
        self.close()

    def reject_protocol(self, error: UnsupportedProtocolError) -> None:
        if self.slot is not None:
            self.fail("a second CONNECT arrived on the same connection.")
            return
        logger.warning("Rejected the connection from %s with CONNACK 1: %s", self.peer, error.reason)
        self.broker.stats.connections_rejected += 1
        self.send(encode(Connack(False, ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION)))
        self.close()

    def reject_connect(self, return_code: ConnackReturnCode, reason: str) -> None:
        logger.warning("Rejected the connection from %s with CONNACK %d: %s", self.peer, return_code, reason)
        self.broker.stats.connections_rejected += 1
        self.send(encode(Connack(False, return_code)))
        self.close()

    # Packet handling.

    def handle_packets(self, packets: list[Packet] | deque[Packet]) -> None:
        """Handle packets in order; stop and keep the rest when a long fan-out starts."""
        handlers = _HANDLERS
        index = 0
        for packet in packets:
            index += 1
            if self.closing:
                return
            handler = handlers.get(type(packet))
            if handler is None:
                self.fail(f"a client never sends {type(packet).__name__.upper()}.")
                return
            if self.slot is None and type(packet) is not Connect:
                self.fail(f"the first packet was {type(packet).__name__.upper()}, not CONNECT.")
                return
            handler(self, packet)
            if self.busy or self.throttled_by is not None:
                self.backlog.extend(itertools.islice(packets, index, None))
                return

    def on_connect(self, packet: Connect) -> None:
        broker = self.broker
        if self.slot is not None:
            self.fail("a second CONNECT arrived on the same connection.")
            return

        # Step 1: client identifier, credentials and capacity.
        client_id = packet.client_id
        if not client_id:
            if not packet.clean_session:
                self.reject_connect(ConnackReturnCode.IDENTIFIER_REJECTED,
                                    "an empty client id requires a clean session.")
                return
            client_id = f"auto-{next(_assigned_ids)}-{os.getpid()}"
        if not broker.authorizer.authenticate(packet.username, packet.password):
            if packet.username is None:
                self.reject_connect(ConnackReturnCode.NOT_AUTHORIZED, "anonymous clients are not allowed.")
            else:
                self.reject_connect(ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD,
                                    f"wrong user name or password for user {packet.username!r}.")
            return
        if packet.will is not None:
            try:
                validate_topic_name(packet.will.topic)
            except InvalidTopicError as error:
                self.fail(f"the will topic is invalid: {error}")
                return
        slot = broker.pool.acquire()
        if slot is None:
            self.reject_connect(ConnackReturnCode.SERVER_UNAVAILABLE,
                                f"{broker.pool.live} clients are connected, the max_connections limit.")
            return

        # Step 2: take over an existing connection with the same client id.
        existing = broker.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            old = existing.connection
            logger.info("Client %r reconnected from %s; closing its previous connection from %s.",
                        client_id, self.peer, old.peer)
            # The old connection ends without a DISCONNECT, so its will is published now, as
            # mosquitto 2.0 does and MQTT 5.0 requires. The close below then skips the will.
            old.clean_disconnect = True
            if old.slot is not None:
                broker.publish_will(old.slot)
            old.close()
            existing.connection = None

        # Step 3: open or resume the session and acknowledge.
        session, session_present, discarded = broker.sessions.open(client_id, packet.clean_session)
        if discarded is not None:
            broker.router.drop_session(discarded)
        session.connection = self
        slot.client_id = client_id
        slot.username = packet.username
        slot.session = session
        slot.will = packet.will
        slot.keepalive_deadline = packet.keepalive * broker.limits.keepalive_factor
        self.slot = slot
        stats = broker.stats
        stats.clients_connected += 1
        if stats.clients_connected > stats.clients_maximum:
            stats.clients_maximum = stats.clients_connected
        self.send(encode(Connack(session_present, ConnackReturnCode.ACCEPTED)))
        if session_present:
            self.send_all(session.resume())

    def on_publish(self, packet: Publish) -> None:
        broker = self.broker
        stats = broker.stats
        stats.messages_received += 1
        topic = packet.topic
        if not topic or "+" in topic or "#" in topic:
            self.fail(f"the PUBLISH topic name {topic!r} is empty or contains a wildcard.")
            return
        slot = self.slot
        qos = packet.qos

        # Step 1: acknowledge, and drop a duplicate QoS 2 packet that was already routed.
        route = True
        if qos == 1:
            self.send(encode_ack(PUBACK, packet.packet_id))
        elif qos == 2:
            route = slot.session.on_publish_qos2(packet.packet_id)
            self.send(encode_ack(PUBREC, packet.packet_id))
        if not route:
            return

        # Step 2: clients may not publish to $SYS, nor where the access rules deny it.
        if topic.startswith("$SYS"):
            stats.publish_dropped += 1
            return
        if broker.check_acl and not broker.authorizer.can_publish(slot.username, topic):
            stats.publish_denied += 1
            return

        # Step 3: retain and fan out. A long fan-out continues in a task, and this client's later packets wait for it.
        message = Message(topic, packet.payload, qos)
        if packet.retain:
            broker.retained.store(message)
        remaining, congested = broker.route(message, self)
        if remaining:
            self.start_fan_out(message, remaining)

        # Step 4: back-pressure. While a subscriber is congested, this client's later packets wait.
        if congested is not None and self.throttled_by is None:
            self.hold_reading_for(congested)

    def start_fan_out(self, message: Message, remaining: list[tuple[Session, int]]) -> None:
        self.busy = True
        if self.backlog is None:
            self.backlog = deque()
        self.transport.pause_reading()
        task = asyncio.ensure_future(self.broker.deliver_in_batches(message, remaining, self))
        task.add_done_callback(self.finish_fan_out)

    def finish_fan_out(self, task: asyncio.Future) -> None:
        self.busy = False
        congested = None
        if not task.cancelled():
            if task.exception() is not None:
                logger.error("Delivering a message failed: %r", task.exception())
            else:
                congested = task.result()
        if self.closing:
            return
        if congested is not None and not congested.closing and not congested.stalled and self.throttled_by is None:
            self.hold_reading_for(congested)
        self.continue_reading()

    def continue_reading(self) -> None:
        """Handle the packets held back while this client waited, then read from its socket again."""
        if self.closing or self.busy or self.throttled_by is not None:
            return
        # The client may have sent nothing because it was not read, so its keepalive restarts now.
        self.last_read = self.broker.loop.time()
        backlog = self.backlog
        self.backlog = None
        if backlog:
            self.handle_packets(list(backlog))
        self.broker.flush()
        self.resume_reading_if_free()

    def resume_reading_if_free(self) -> None:
        """Read from the socket again unless a fan-out runs, a congested subscriber is awaited or the output is full."""
        if not (self.closing or self.busy or self.write_paused or self.throttled_by is not None):
            self.transport.resume_reading()

    # Flow control between publishers and congested subscribers.

    def hold_reading_for(self, subscriber: Connection) -> None:
        """Stop reading this publisher until `subscriber` drains or is declared stalled."""
        # NOTE: two clients that publish to each other and both fall behind wait for each other,
        # because neither is read. Only STALLED_SUBSCRIBER_SECONDS ends that wait.
        self.throttled_by = subscriber
        if self.backlog is None:
            self.backlog = deque()
        self.transport.pause_reading()
        if subscriber.blocked_publishers is None:
            subscriber.blocked_publishers = []
            subscriber.stall_timer = self.broker.loop.call_later(STALLED_SUBSCRIBER_SECONDS, subscriber.declare_stalled)
        subscriber.blocked_publishers.append(self)

    def check_drained(self) -> None:
        """Release the waiting publishers once this subscriber's queue and output buffer have drained."""
        slot = self.slot
        session = slot.session if slot is not None else None
        if self.output_full() or (session is not None and not session.is_drained()):
            return
        if self.stalled:
            self.stalled = False
            logger.info("Client %r from %s caught up with its messages; publishers wait for it again when it "
                        "falls behind.", slot.client_id if slot is not None else "", self.peer)
        if self.blocked_publishers is not None:
            self.release_publishers()

    def release_publishers(self) -> None:
        """Let every publisher that waits for this subscriber be read again, in the next loop iteration."""
        publishers = self.blocked_publishers or ()
        self.blocked_publishers = None
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        call_soon = self.broker.loop.call_soon
        for publisher in publishers:
            if publisher.throttled_by is self:
                publisher.throttled_by = None
                call_soon(publisher.continue_reading)

    def declare_stalled(self) -> None:
        """Stop holding publishers back for a subscriber that stayed congested for STALLED_SUBSCRIBER_SECONDS."""
        self.stall_timer = None
        if self.closing:
            return
        self.stalled = True
        slot = self.slot
        session = slot.session if slot is not None else None
        logger.warning(
            "Client %r from %s stayed congested for %.1f seconds with %d messages queued and %d bytes buffered, "
            "so publishers no longer wait for it (%d were waiting). Until it catches up, its oldest queued messages "
            "are dropped when its queue is full and QoS 0 messages are dropped while its buffer is full. If the "
            "client is only slow, raise max_queued_messages or outgoing_high_water.",
            slot.client_id if slot is not None else "", self.peer, STALLED_SUBSCRIBER_SECONDS,
            len(session.queue) if session is not None else 0,
            self.transport.get_write_buffer_size() + self.pending_size, len(self.blocked_publishers or ()),
        )
        self.release_publishers()

    def on_puback(self, packet: Puback) -> None:
        session = self.slot.session
        if session.on_puback(packet.packet_id) and not self.write_paused:
            self.send_all(session.send_queued())

    def on_pubrec(self, packet: Pubrec) -> None:
        self.send(self.slot.session.on_pubrec(packet.packet_id))

    def on_pubrel(self, packet: Pubrel) -> None:
        self.send(self.slot.session.on_pubrel(packet.packet_id))

    def on_pubcomp(self, packet: Pubcomp) -> None:
        session = self.slot.session
        if session.on_pubcomp(packet.packet_id) and not self.write_paused:
            self.send_all(session.send_queued())

    def on_subscribe(self, packet: Subscribe) -> None:
        broker = self.broker
        slot = self.slot
        session = slot.session
        return_codes = []
        granted = []
        for topic_filter, qos in packet.subscriptions:
            try:
                validate_topic_filter(topic_filter)
            except InvalidTopicError as error:
                logger.warning("Rejected the subscription of client %r to %r: %s", slot.client_id, topic_filter, error)
                return_codes.append(SUBACK_FAILURE)
                continue
            if broker.check_acl and not broker.authorizer.can_subscribe(slot.username, topic_filter):
                return_codes.append(SUBACK_FAILURE)
                continue
            broker.router.subscribe(session, topic_filter, qos)
            return_codes.append(qos)
            granted.append((topic_filter, qos))
        self.send(encode(Suback(packet.packet_id, tuple(return_codes))))

        # Retained messages follow the SUBACK, each at most at the granted QoS.
        for topic_filter, qos in granted:
            for message in broker.retained.match(topic_filter):
                delivery_qos = min(qos, message.qos)
                if delivery_qos == 0 and self.output_full():
                    broker.stats.qos0_dropped_slow += 1
                    continue
                data = session.deliver(message, delivery_qos)
                if data is not None:
                    self.send_all([data])

    def on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.slot.session
        for topic_filter in packet.topic_filters:
            self.broker.router.unsubscribe(session, topic_filter)
        self.send(encode_ack(UNSUBACK_FIRST_BYTE, packet.packet_id))

    def on_pingreq(self, packet: Pingreq) -> None:
        self.send(PINGRESP_BYTES)

    def on_disconnect(self, packet: Disconnect) -> None:
        self.clean_disconnect = True
        if self.slot is not None:
            self.slot.will = None
        self.close()


# Packet types a server receives, with their handlers; any other type closes the connection.
_HANDLERS = {
    Connect: Connection.on_connect,
    Publish: Connection.on_publish,
    Puback: Connection.on_puback,
    Pubrec: Connection.on_pubrec,
    Pubrel: Connection.on_pubrel,
    Pubcomp: Connection.on_pubcomp,
    Subscribe: Connection.on_subscribe,
    Unsubscribe: Connection.on_unsubscribe,
    Pingreq: Connection.on_pingreq,
    Disconnect: Connection.on_disconnect,
}
