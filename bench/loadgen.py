"""Drive an MQTT broker with raw asyncio sockets and pre-encoded packets.

Each scenario connects its clients, runs for a fixed time and then waits a bounded time
for the deliveries still in flight. Receivers count fixed-length PUBLISH packets by
their byte count (see bench.packets), so one load-generator process can keep up with
brokers that deliver hundreds of thousands of messages per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psutil

from bench import packets

# Bytes a publisher may queue in its transport before it waits for the socket to drain.
# Large enough that a write rarely blocks, small enough that a stopped broker is noticed.
WRITE_HIGH_WATER = 256 * 1024

# QoS 0 PUBLISH packets written with one transport.write() call.
PUBLISH_BLOCK = 100

# Seconds to wait for one CONNACK or SUBACK; a broker slower than this counts as failed.
HANDSHAKE_TIMEOUT = 30.0

# After the publishers stop, deliveries still in flight are counted until they are all
# in, until none arrive for QUIET_SECONDS, or until DRAIN_TIMEOUT seconds have passed.
QUIET_SECONDS = 2.0
DRAIN_TIMEOUT = 10.0

# CONNECTs in flight at once while opening idle connections. Fewer than the listen
# backlog of every broker measured (mosquitto uses 100), so no SYN is dropped and retried.
CONNECT_CONCURRENCY = 64

# The idle broker's RSS counts as settled when two samples this far apart differ by
# less than RSS_SETTLED_FRACTION; it is read at most RSS_SETTLE_TIMEOUT seconds long.
RSS_SAMPLE_INTERVAL = 0.5
RSS_SETTLED_FRACTION = 0.002
RSS_SETTLE_TIMEOUT = 15.0

# Seconds to wait for the sockets to close after the DISCONNECTs were written.
CLOSE_TIMEOUT = 10.0

PAYLOAD_SIZE = 64


class LoadError(RuntimeError):
    """A scenario could not run: a broker rejected a client, timed out or broke framing."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class FlowResult:
    """Counts and timing of one message-flow scenario."""

    scenario: str
    publishers: int
    subscribers: int
    qos: int
    # PUBLISH packets the publishers wrote.
    sent: int
    # Deliveries a broker that loses nothing makes: sent × subscribers.
    expected: int
    # PUBLISH packets the subscribers had read when the publishers stopped.
    received_in_window: int
    # PUBLISH packets the subscribers read, including those that arrived while draining.
    received: int
    # PUBACKs the publishers read (QoS 1 only, else 0).
    acknowledged: int
    # Seconds the publishers were sending.
    send_seconds: float
    # Seconds from the first send to the last delivery counted.
    seconds: float
    # Seconds from the first send to the last PUBACK counted (QoS 1 only, else 0).
    ack_seconds: float

    @property
    def delivered_fraction(self) -> float:
        return self.received / self.expected if self.expected else 0.0

    @property
    def rate(self) -> float:
        """Headline figure: deliveries per second.

        At QoS 0 the publishers offer more than a broker can deliver. So the figure is
        the deliveries read while they were sending, divided by the sending time, and
        the backlog drained afterwards only counts towards `delivered_fraction`.

        At QoS 1 the window bounds the backlog. A message counts once the publisher has
        its PUBACK and the subscriber has it too, and the time runs until the last of
        them. So a broker that acknowledges quickly but delivers late is not credited
        with the PUBACK rate.
        """
        if not self.qos:
            return self.received_in_window / self.send_seconds if self.send_seconds > 0 else 0.0
        count = min(self.acknowledged, self.received)
        seconds = max(self.seconds, self.ack_seconds)
        return count / seconds if seconds > 0 else 0.0

    @property
    def ack_rate(self) -> float:
        """PUBACKs per second as the publisher saw them (QoS 1 only)."""
        return self.acknowledged / self.ack_seconds if self.ack_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class IdleResult:
    """RSS of a broker before and after a number of idle connections were opened."""

    connections: int
    rss_before: int
    rss_after: int
    connect_seconds: float

    @property
    def bytes_per_connection(self) -> float:
        return (self.rss_after - self.rss_before) / self.connections


class BenchClient(asyncio.Protocol):
    """One MQTT connection: sends CONNECT, waits for CONNACK, then hands bytes to `on_stream`."""

    def __init__(self, client_id: str) -> None:
        loop = asyncio.get_running_loop()
        self.client_id = client_id
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.error: Exception | None = None
        # Set by close(), so the connection loss that follows is not an error.
        self.closing = False
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.transport.write(packets.connect(self.client_id))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            if not self.connack.done():
                if len(self.buffer) < packets.CONNACK_LENGTH:
                    return
                code = packets.parse_connack(self.buffer)
                del self.buffer[: packets.CONNACK_LENGTH]
                self.connack.set_result(code)
            if self.buffer:
                self.on_stream()
        except packets.FramingError as error:
            self.fail(error)

    def on_stream(self) -> None:
        """Consume `self.buffer` after the CONNACK; idle clients expect nothing."""
        raise packets.FramingError(
            f"Client {self.client_id} expected no packet after CONNACK but got "
            f"{bytes(self.buffer[:8]).hex(' ')}."
        )

    def fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        if not self.connack.done():
            self.connack.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if not self.lost.done():
            self.lost.set_result(None)
        if self.error is None and self.transport is not None and not self.closing:
            self.error = ConnectionError(f"Broker closed the connection of {self.client_id}: {exc}.")
        if not self.connack.done():
            self.connack.set_exception(
                ConnectionError(f"Broker closed the connection of {self.client_id} before CONNACK.")
            )

    def close(self) -> None:
        """Send DISCONNECT and close the socket."""
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packets.disconnect())
            self.transport.close()


class Subscriber(BenchClient):
    """Subscribes to one filter and counts fixed-length PUBLISH deliveries."""

    def __init__(self, client_id: str, delivery: bytes) -> None:
        super().__init__(client_id)
        self.suback: asyncio.Future[int] = self.loop.create_future()
        self.packet_length = len(delivery)
        self.first_byte = delivery[0]
        self.qos = (delivery[0] >> 1) & 0x03
        self.id_offset = packets.packet_id_offset(delivery) if self.qos else 0
        self.received = 0
        self.last_received_at = 0.0

    def on_stream(self) -> None:
        if not self.suback.done():
            if len(self.buffer) < packets.SUBACK_ONE_FILTER_LENGTH:
                return
            granted = packets.parse_suback(self.buffer)
            del self.buffer[: packets.SUBACK_ONE_FILTER_LENGTH]
            self.suback.set_result(granted)

        whole = len(self.buffer) - len(self.buffer) % self.packet_length
        if not whole:
            return
        deliveries = self.buffer[:whole]
        packets.check_first_bytes(deliveries, self.packet_length, self.first_byte)
        if self.qos:
            assert self.transport is not None
            self.transport.write(packets.pubacks_for(deliveries, self.packet_length, self.id_offset))
        del self.buffer[:whole]
        self.received += whole // self.packet_length
        self.last_received_at = time.perf_counter()

    def fail(self, error: Exception) -> None:
        if not self.suback.done():
            self.suback.set_exception(error)
        super().fail(error)


class Publisher(BenchClient):
    """Publishes pre-encoded QoS 0 blocks as fast as the socket drains."""

    def __init__(self, client_id: str, block: bytes, block_count: int) -> None:
        super().__init__(client_id)
        self.block = block
        self.block_count = block_count
        self.sent = 0

    async def blast(self, deadline: float) -> None:
        """Write blocks until `deadline` (time.perf_counter()), waiting whenever the socket is full."""
        assert self.transport is not None
        while self.error is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            if not self.writable.is_set():
                try:
                    await asyncio.wait_for(self.writable.wait(), remaining)
                except TimeoutError:
                    break
            if self.transport.is_closing():
                break
            self.transport.write(self.block)
            self.sent += self.block_count
            await asyncio.sleep(0)


class WindowPublisher(BenchClient):
    """Publishes QoS 1 messages keeping `window` of them unacknowledged."""

    def __init__(self, client_id: str, run: bytes, window: int) -> None:
        super().__init__(client_id)
        self.run = run
        self.packet_length = len(run) // packets.MAX_PACKET_ID
        self.window = window
        self.sent = 0
        self.acknowledged = 0
        self.sending = False
        self.last_ack_at = 0.0

    def start(self) -> None:
        self.sending = True
        self.send(self.window)

    def stop(self) -> None:
        self.sending = False

    def send(self, count: int) -> None:
        """Write the next `count` packets of the pre-encoded run, wrapping after id 65535."""
        assert self.transport is not None
        start = self.sent % packets.MAX_PACKET_ID
        end = start + count
        if end <= packets.MAX_PACKET_ID:
            chunk = self.run[start * self.packet_length : end * self.packet_length]
        else:
            wrapped = end - packets.MAX_PACKET_ID
            chunk = self.run[start * self.packet_length :] + self.run[: wrapped * self.packet_length]
        self.transport.write(chunk)
        self.sent += count

    def on_stream(self) -> None:
        whole = len(self.buffer) - len(self.buffer) % packets.PUBACK_LENGTH
        if not whole:
            return
        packets.check_first_bytes(self.buffer[:whole], packets.PUBACK_LENGTH, packets.PUBACK)
        del self.buffer[:whole]
        count = whole // packets.PUBACK_LENGTH
        self.acknowledged += count
        self.last_ack_at = time.perf_counter()
        if self.sending:
            self.send(count)


async def open_client(target: Target, client: BenchClient) -> BenchClient:
    """Connect `client` to `target` and wait for an accepting CONNACK."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(
            loop.create_connection(lambda: client, target.host, target.port), HANDSHAKE_TIMEOUT
        )
        code = await asyncio.wait_for(client.connack, HANDSHAKE_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise LoadError(
            f"Client {client.client_id} could not connect to {target.host}:{target.port}: {error!r}."
        ) from error
    if code != 0:
        raise LoadError(f"Broker rejected client {client.client_id} with CONNACK return code {code}.")
    return client


async def open_subscriber(target: Target, client: Subscriber, topic_filter: str) -> Subscriber:
    """Connect, subscribe to `topic_filter` at the client's QoS and wait for the SUBACK."""
    await open_client(target, client)
    assert client.transport is not None
    client.transport.write(packets.subscribe(1, topic_filter, client.qos))
    try:
        granted = await asyncio.wait_for(client.suback, HANDSHAKE_TIMEOUT)
    except TimeoutError as error:
        raise LoadError(f"Subscriber {client.client_id} got no SUBACK within {HANDSHAKE_TIMEOUT} s.") from error
    if granted != client.qos:
        raise LoadError(
            f"Subscriber {client.client_id} asked for QoS {client.qos} on {topic_filter!r} "
            f"but the broker granted 0x{granted:02X}."
        )
    return client


async def gather_bounded(
    factories: Sequence[Callable[[], Awaitable[BenchClient]]], limit: int
) -> list[BenchClient]:
    """Run the connection factories with at most `limit` in flight; on the first error cancel the rest."""
    semaphore = asyncio.Semaphore(limit)

    async def guarded(factory: Callable[[], Awaitable[BenchClient]]) -> BenchClient:
        async with semaphore:
            return await factory()

    tasks = [asyncio.ensure_future(guarded(factory)) for factory in factories]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def wait_for_deliveries(count: Callable[[], int], expected: int) -> None:
    """Wait until `count()` reaches `expected`, stops growing for QUIET_SECONDS, or DRAIN_TIMEOUT passes."""
    started = time.perf_counter()
    last_value = count()
    last_change = started
    while True:
        await asyncio.sleep(0.05)
        now = time.perf_counter()
        value = count()
        if value >= expected or now - started >= DRAIN_TIMEOUT:
            return
        if value != last_value:
            last_value, last_change = value, now
        elif now - last_change >= QUIET_SECONDS:
            return


def raise_client_errors(clients: Sequence[BenchClient]) -> None:
    for client in clients:
        if client.error is not None:
            raise LoadError(f"Client {client.client_id} failed: {client.error}") from client.error


async def close_all(clients: Sequence[BenchClient]) -> None:
    """Disconnect every client and wait up to CLOSE_TIMEOUT seconds for the sockets to close."""
    for client in clients:
        client.close()
    pending = [client.lost for client in clients if not client.lost.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)


async def qos0_flow(
    target: Target, scenario: str, publishers: int, subscribers: int, duration: float
) -> FlowResult:
    """Publish QoS 0 messages from `publishers` clients to `subscribers` clients for `duration` s."""
    topic = f"bench/{scenario}"
    payload = b"x" * PAYLOAD_SIZE
    delivery = packets.publish(topic, payload)
    block = delivery * PUBLISH_BLOCK
    clients: list[BenchClient] = []
    try:
        subs = await gather_bounded(
            [
                lambda i=i: open_subscriber(target, Subscriber(f"{scenario}-sub-{i}", delivery), topic)
                for i in range(subscribers)
            ],
            CONNECT_CONCURRENCY,
        )
        clients.extend(subs)
        pubs = await gather_bounded(
            [
                lambda i=i: open_client(target, Publisher(f"{scenario}-pub-{i}", block, PUBLISH_BLOCK))
                for i in range(publishers)
            ],
            CONNECT_CONCURRENCY,
        )
        clients.extend(pubs)

        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(pub.blast(deadline) for pub in pubs))  # type: ignore[attr-defined]
        send_seconds = time.perf_counter() - started
        received_in_window = sum(sub.received for sub in subs)  # type: ignore[attr-defined]
        raise_client_errors(clients)

        sent = sum(pub.sent for pub in pubs)  # type: ignore[attr-defined]
        expected = sent * subscribers
        await wait_for_deliveries(lambda: sum(sub.received for sub in subs), expected)  # type: ignore[attr-defined]
        raise_client_errors(clients)

        received = sum(sub.received for sub in subs)  # type: ignore[attr-defined]
        last = max((sub.last_received_at for sub in subs), default=0.0)  # type: ignore[attr-defined]
        return FlowResult(
            scenario=scenario,
            publishers=publishers,
            subscribers=subscribers,
            qos=0,
            sent=sent,
            expected=expected,
            received_in_window=received_in_window,
            received=received,
            acknowledged=0,
            send_seconds=send_seconds,
            seconds=max(last - started, 0.0),
            ack_seconds=0.0,
        )
    finally:
        await close_all(clients)


async def qos1_flow(target: Target, window: int, duration: float) -> FlowResult:
    """Publish QoS 1 messages from one client to one subscriber with `window` unacknowledged."""
    scenario = "qos1"
    topic = f"bench/{scenario}"
    payload = b"x" * PAYLOAD_SIZE
    run = packets.publish_run(topic, payload)
    delivery = run[: len(run) // packets.MAX_PACKET_ID]
    clients: list[BenchClient] = []
    try:
        sub = await open_subscriber(target, Subscriber(f"{scenario}-sub", delivery), topic)
        clients.append(sub)
        pub = WindowPublisher(f"{scenario}-pub", run, window)
        await open_client(target, pub)
        clients.append(pub)

        started = time.perf_counter()
        pub.start()
        await asyncio.sleep(duration)
        pub.stop()
        send_seconds = time.perf_counter() - started
        received_in_window = sub.received
        raise_client_errors(clients)

        await wait_for_deliveries(lambda: min(pub.acknowledged, sub.received), pub.sent)
        raise_client_errors(clients)
        return FlowResult(
            scenario=scenario,
            publishers=1,
            subscribers=1,
            qos=1,
            sent=pub.sent,
            expected=pub.sent,
            received_in_window=received_in_window,
            received=sub.received,
            acknowledged=pub.acknowledged,
            send_seconds=send_seconds,
            seconds=max(sub.last_received_at - started, 0.0),
            ack_seconds=max(pub.last_ack_at - started, 0.0),
        )
    finally:
        await close_all(clients)


async def settled_rss(pid: int) -> int:
    """Return the RSS of process `pid` once two samples agree within RSS_SETTLED_FRACTION."""
    process = psutil.Process(pid)
    previous = process.memory_info().rss
    deadline = time.perf_counter() + RSS_SETTLE_TIMEOUT
    while time.perf_counter() < deadline:
        await asyncio.sleep(RSS_SAMPLE_INTERVAL)
        current = process.memory_info().rss
        if abs(current - previous) <= RSS_SETTLED_FRACTION * previous:
            return current
        previous = current
    return previous


async def idle_connections(target: Target, broker_pid: int, connections: int) -> IdleResult:
    """Open `connections` idle clients and return the broker's RSS growth."""
    rss_before = await settled_rss(broker_pid)
    clients: list[BenchClient] = []

    async def connect_one(index: int) -> BenchClient:
        client = await open_client(target, BenchClient(f"idle-{index:06d}"))
        clients.append(client)
        return client

    try:
        started = time.perf_counter()
        await gather_bounded([lambda i=i: connect_one(i) for i in range(connections)], CONNECT_CONCURRENCY)
        connect_seconds = time.perf_counter() - started
        rss_after = await settled_rss(broker_pid)
        raise_client_errors(clients)
        return IdleResult(
            connections=connections,
            rss_before=rss_before,
            rss_after=rss_after,
            connect_seconds=connect_seconds,
        )
    finally:
        await close_all(clients)
