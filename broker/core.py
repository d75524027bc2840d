"""The broker's shared state and the routing of messages between connections.

The `Broker` contains the sessions, subscriptions, retained messages, the client pool
and the counters. It reaches sockets only through `Connection` methods, never through
asyncio transports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from broker import __version__
from broker.auth import Authorizer
from broker.config import BrokerConfig
from broker.packets import Will
from broker.pool import ClientPool
from broker.retained import RetainedStore
from broker.router import Router
from broker.rss import current_rss, format_megabytes
from broker.session import Message, Session, SessionStore
from broker.stats import BrokerStats, metric_values, sys_topics

if TYPE_CHECKING:
    from broker.connection import Connection

# The server's modules share one logger name, broker.server, as the log lines in docs/broker.md show.
logger = logging.getLogger("broker.server")

# Seconds between sweeps for CONNECT timeouts and keepalive. One coarse timer for all
# connections costs less than a timer each; a deadline may pass by up to one interval.
MAX_SWEEP_INTERVAL_SECONDS = 0.5


class Slot:
    """The per-connection record the pool hands out: MQTT state of one connected client.

    A slot has no buffers, so a preheated slot is small. The read buffer belongs to the
    Connection, which is created with the socket and dropped with it.
    """

    __slots__ = ("client_id", "username", "session", "will", "keepalive_deadline")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.client_id = ""
        self.username: str | None = None
        self.session: Session | None = None
        self.will: Will | None = None
        # Seconds without any packet after which the connection is closed; 0 = no keepalive.
        self.keepalive_deadline = 0.0


class Broker:
    """State shared by every connection and the logic that routes messages between them.

    Build it inside the running event loop, which its timers and connections use.
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.stats = BrokerStats()
        self.authorizer = Authorizer(config.access)
        self.check_acl = bool(config.access.rules)
        self.sessions = SessionStore(config.limits.max_inflight_messages, config.limits.max_queued_messages)
        self.router = Router()
        self.retained = RetainedStore()
        self.pool: ClientPool[Slot] = ClientPool(config.pool, Slot, on_expand=self._log_expansion)
        self.connections: set[Connection] = set()
        # Connections with pending output, which flush() writes with one call per connection.
        self.dirty: list[Connection] = []
        self.batch_size = config.pool.forward_batch_size
        self.loop = asyncio.get_running_loop()

    # Startup and periodic work.

    def _log_expansion(self, old: int, new: int, live: int) -> None:
        logger.info("Pool grew from %d to %d slots at %d live connections; RSS %s.",
                    old, new, live, format_megabytes(current_rss()))

    def sweep(self) -> None:
        """Close connections past their CONNECT timeout or past keepalive_factor times their keepalive."""
        now = self.loop.time()
        connect_timeout = self.limits.connect_timeout
        for connection in list(self.connections):
            slot = connection.slot
            if slot is None:
                if now - connection.opened_at > connect_timeout and not connection.closing:
                    logger.warning("Closed the connection from %s: no CONNECT within %.1f seconds.",
                                   connection.peer, connect_timeout)
                    connection.close()
            # A publisher that waits for a congested subscriber is not read, so its silence is not its fault.
            elif (slot.keepalive_deadline and now - connection.last_read > slot.keepalive_deadline
                  and connection.throttled_by is None):
                logger.warning("Closed the connection of client %r from %s: nothing received for %.1f seconds "
                               "(%g times its keepalive).", slot.client_id, connection.peer, slot.keepalive_deadline,
                               self.limits.keepalive_factor)
                connection.close()

    def sweep_interval(self) -> float:
        return max(0.05, min(MAX_SWEEP_INTERVAL_SECONDS, self.limits.connect_timeout / 4))

    def publish_sys_topics(self) -> None:
        """Publish the $SYS/broker counters as retained messages."""
        self.stats.clients_total = len(self.sessions)
        self.stats.subscriptions = len(self.router)
        self.stats.retained = len(self.retained)
        topics = sys_topics(self.stats, self.pool, current_rss(), __version__, time.monotonic())
        for topic, payload in topics.items():
            message = Message(topic, payload.encode("utf-8"), 0, retain=True)
            self.retained.store(message)
            self.route_all(message.with_retain(False))
        self.flush()

    def metrics(self) -> dict[str, float]:
        """Return the counters the Prometheus endpoint exposes, by metric name suffix."""
        stats = self.stats
        stats.clients_total = len(self.sessions)
        stats.subscriptions = len(self.router)
        stats.retained = len(self.retained)
        return metric_values(stats, self.pool, current_rss(), time.monotonic())

    # Routing.

    def route(
        self, message: Message, publisher: Connection | None = None,
    ) -> tuple[list[tuple[Session, int]] | None, Connection | None]:
        """Deliver `message` from `publisher` to its subscribers in a first batch.

        Return the deliveries left after that batch (None when there are none) and a
        connected subscriber other than `publisher` that the batch left congested (None
        when there is none).
        """
        targets = self.router.targets(message.topic)
        if not targets:
            return None, None
        if len(targets) <= self.batch_size:
            return None, self.deliver_batch(message, targets.items(), publisher)
        items = list(targets.items())
        congested = self.deliver_batch(message, items[:self.batch_size], publisher)
        return items[self.batch_size:], congested

    def route_all(self, message: Message) -> None:
        """Deliver `message` to its subscribers, continuing past the first batch in a task.

        No publisher is paused for these messages, so congestion is ignored.
        """
        remaining, _ = self.route(message)
        if remaining:
            asyncio.ensure_future(self.deliver_in_batches(message, remaining))

    def deliver_batch(self, message: Message, targets, publisher: Connection | None = None) -> Connection | None:
        """Send `message` to each (session, granted QoS), queueing or dropping for slow and offline clients.

        The packets wait in each connection's pending output until flush(). Return a
        connected subscriber other than `publisher` that is congested afterwards and not
        stalled, so that the caller can stop reading the publisher. Return None when there
        is none. A publisher never waits for itself, because it could not read the
        acknowledgements that would drain its own queue.
        """
        stats = self.stats
        message_qos = message.qos
        congested = None
        sent = 0
        sent_bytes = 0
        for session, qos in targets:
            if qos > message_qos:
                qos = message_qos
            connection = session.connection

            # Step 1: offline. QoS 1 and 2 wait in the session's queue, which drops its oldest past the bound.
            if connection is None or connection.closing:
                if qos and not session.enqueue(message, qos):
                    stats.publish_dropped += 1
                continue

            # Step 2: send, or queue behind a full output buffer or in-flight window. QoS 0 is dropped instead.
            if connection.write_paused or connection.pending_size > connection.pending_limit:
                if qos:
                    if not session.enqueue(message, qos):
                        stats.publish_dropped += 1
                else:
                    stats.qos0_dropped_slow += 1
                    stats.publish_dropped += 1
                is_congested = True
            else:
                data = session.try_send(message, qos) if qos else message.encode(0)
                if data is None:
                    if not session.enqueue(message, qos):
                        stats.publish_dropped += 1
                    is_congested = session.is_congested()
                else:
                    connection.send(data)
                    sent += 1
                    sent_bytes += len(data)
                    is_congested = connection.pending_size > connection.pending_limit

            # Step 3: report a congested subscriber unless it is stalled or the publisher itself.
            if is_congested and not connection.stalled and connection is not publisher:
                congested = connection
        stats.messages_sent += sent
        stats.bytes_sent += sent_bytes
        return congested

    async def deliver_in_batches(
        self, message: Message, targets: list[tuple[Session, int]], publisher: Connection | None = None,
    ) -> Connection | None:
        """Deliver to a long target list `batch_size` at a time, yielding to the loop between batches.

        Return the last congested subscriber that a batch reported, or None.
        """
        size = self.batch_size
        congested = None
        for start in range(0, len(targets), size):
            await asyncio.sleep(0)
            congested = self.deliver_batch(message, targets[start:start + size], publisher) or congested
            self.flush()
        return congested

    def flush(self) -> None:
        """Write the output each connection collected since the last flush, in one call per connection.

        Every callback that sends anything calls this before it returns to the event loop.
        """
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for connection in dirty:
                connection.flush()

    def publish_will(self, slot: Slot) -> None:
        will = slot.will
        slot.will = None
        if will is None:
            return
        if will.topic.startswith("$SYS") or (self.check_acl and not self.authorizer.can_publish(slot.username, will.topic)):
            self.stats.publish_denied += 1
            return
        message = Message(will.topic, will.payload, will.qos)
        if will.retain:
            self.retained.store(message)
        self.route_all(message)
