"""Server-side normative statements of MQTT 3.1.1, checked over raw sockets.

The OASIS standard "MQTT Version 3.1.1" (OASIS Standard, 29 October 2014) numbers each
normative statement, for example [MQTT-3.8.3-3]. Every test case below carries that
number as its pytest id and states the statement's meaning in a short paraphrase. Only
statements about the server that a black-box client can observe are here; docs/conformance.md
lists what is left out.

The packets under test are literal bytes. Helper clients that subscribe or publish
around them use the small encoders in rawclient.py, which share no code with the broker.
Run with BROKER_TESTS_REFERENCE=mosquitto to check the cases against Debian's mosquitto.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from rawclient import (
    CONNACK,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    ConnectionClosed,
    RawConnection,
    RawConnections,
    ack_packet,
    connect_packet,
    publish_packet,
)

pytestmark = pytest.mark.timeout(60)

# A valid CONNECT (clean session, keepalive 60 s) with client id "v". A connection under
# test starts with it unless the case is about CONNECT itself.
VALID_CONNECT = bytes.fromhex("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 76")
ACCEPTED_CONNACK = bytes.fromhex("20 02 00 00")
PINGREQ_BYTES = bytes.fromhex("c0 00")
PINGRESP_BYTES = bytes.fromhex("d0 00")

# Seconds the broker gets to close a connection after a violation. Closing is immediate
# in both brokers, so this bound only turns a missing close into a failure.
CLOSE_TIMEOUT = 3.0

# Seconds a silent connection with keepalive 1 s may stay open before the test fails.
KEEPALIVE_CLOSE_TIMEOUT = 6.0

_client_numbers = itertools.count(1)


@pytest.fixture
def wire(mqtt_broker) -> Iterator[RawConnections]:
    connections = RawConnections(mqtt_broker.host, mqtt_broker.port)
    yield connections
    connections.close_all()


@pytest.fixture
def client_id(request) -> Callable[[str], str]:
    """Make client ids unique to the test, so no session leaks from one case to another."""
    case = re.sub(r"[^A-Za-z0-9]", "", request.node.name.partition("[")[2])

    def make(label: str) -> str:
        return f"n{next(_client_numbers)}-{case}-{label}"

    return make


def assert_closed_without_reply(connection: RawConnection, meaning: str, reply: bytes = b"") -> None:
    received, closed = connection.read_until_closed(CLOSE_TIMEOUT)
    assert received == reply, f"{meaning} Expected {reply.hex(' ') or 'no bytes'}, got {received.hex(' ') or 'no bytes'}."
    assert closed, f"{meaning} The broker kept the connection open for {CLOSE_TIMEOUT} s."


def assert_still_serving(connection: RawConnection) -> None:
    connection.send(PINGREQ_BYTES)
    assert connection.expect(PINGRESP).raw == PINGRESP_BYTES


# ---------------------------------------------------------------------------
# Violations: the broker must close the connection and send nothing, or only the
# CONNACK the standard names.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    meaning: str
    data: str
    # Send VALID_CONNECT first and read its CONNACK.
    after_connect: bool = True
    # A literal request and its expected reply sent before the violation, e.g. a PUBLISH and its PUBREC.
    setup: tuple[str, str] | None = None
    # The only bytes the broker may send before it closes.
    reply: str = ""


VIOLATIONS = [
    pytest.param(Violation(
        "A first packet other than CONNECT closes the connection.",
        "30 04 00 01 61 78", after_connect=False), id="MQTT-3.1.0-1"),
    pytest.param(Violation(
        "A second CONNECT on one connection is a protocol violation that closes it.",
        "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 62"), id="MQTT-3.1.0-2"),
    pytest.param(Violation(
        "An unsupported protocol level gets CONNACK 0x01, then the connection closes.",
        "10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 63", after_connect=False, reply="20 02 00 01"),
        id="MQTT-3.1.2-2"),
    pytest.param(Violation(
        "A CONNECT whose reserved flag (bit 0) is 1 closes the connection.",
        "10 0d 00 04 4d 51 54 54 04 03 00 3c 00 01 64", after_connect=False), id="MQTT-3.1.2-3"),
    pytest.param(Violation(
        "With the Will Flag set, the payload must hold Will Topic and Will Message; without them the CONNECT is invalid.",
        "10 0d 00 04 4d 51 54 54 04 06 00 3c 00 01 65", after_connect=False), id="MQTT-3.1.2-9"),
    pytest.param(Violation(
        "With the Will Flag clear, Will QoS must be 0.",
        "10 0d 00 04 4d 51 54 54 04 0a 00 3c 00 01 66", after_connect=False), id="MQTT-3.1.2-13"),
    pytest.param(Violation(
        "A Will QoS of 3 is invalid.",
        "10 13 00 04 4d 51 54 54 04 1e 00 3c 00 01 67 00 01 77 00 01 6d", after_connect=False),
        id="MQTT-3.1.2-14"),
    pytest.param(Violation(
        "With the Will Flag clear, Will Retain must be 0.",
        "10 0d 00 04 4d 51 54 54 04 22 00 3c 00 01 68", after_connect=False), id="MQTT-3.1.2-15"),
    pytest.param(Violation(
        "With the User Name Flag set, a user name must follow in the payload.",
        "10 0d 00 04 4d 51 54 54 04 82 00 3c 00 01 69", after_connect=False), id="MQTT-3.1.2-19"),
    pytest.param(Violation(
        "With the Password Flag set, a password must follow in the payload.",
        "10 10 00 04 4d 51 54 54 04 c2 00 3c 00 01 6a 00 01 75", after_connect=False), id="MQTT-3.1.2-21"),
    pytest.param(Violation(
        "The Password Flag must be 0 when the User Name Flag is 0.",
        "10 10 00 04 4d 51 54 54 04 42 00 3c 00 01 6b 00 01 70", after_connect=False), id="MQTT-3.1.2-22"),
    pytest.param(Violation(
        "The Client Identifier must be present as the first payload field.",
        "10 0a 00 04 4d 51 54 54 04 02 00 3c", after_connect=False), id="MQTT-3.1.3-3"),
    pytest.param(Violation(
        "The Client Identifier must be well-formed UTF-8.",
        "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 ff", after_connect=False), id="MQTT-3.1.3-4"),
    pytest.param(Violation(
        "A zero-byte Client Identifier with CleanSession 0 gets CONNACK 0x02, then the connection closes.",
        "10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00", after_connect=False, reply="20 02 00 02"),
        id="MQTT-3.1.3-8"),
    pytest.param(Violation(
        "A PUBLISH with both QoS bits set is malformed and closes the connection.",
        "36 06 00 01 61 00 01 78"), id="MQTT-3.3.1-4"),
    pytest.param(Violation(
        "A Topic Name in PUBLISH must not contain the single-level wildcard '+'.",
        "30 06 00 03 61 2f 2b 78"), id="MQTT-3.3.2-2:plus"),
    pytest.param(Violation(
        "A Topic Name in PUBLISH must not contain the multi-level wildcard '#'.",
        "30 06 00 03 61 2f 23 78"), id="MQTT-3.3.2-2:hash"),
    pytest.param(Violation(
        "PUBREL fixed-header flags must be 0b0010; other values are malformed.",
        "60 02 00 01", setup=("34 06 00 01 61 00 01 78", "50 02 00 01")), id="MQTT-3.6.1-1"),
    pytest.param(Violation(
        "SUBSCRIBE fixed-header flags must be 0b0010; other values are malformed.",
        "80 06 00 01 00 01 61 00"), id="MQTT-3.8.1-1"),
    pytest.param(Violation(
        "A SUBSCRIBE without any Topic Filter/QoS pair is a protocol violation.",
        "82 02 00 01"), id="MQTT-3.8.3-3"),
    pytest.param(Violation(
        "A requested QoS of 3 in SUBSCRIBE is malformed.",
        "82 06 00 01 00 01 61 03"), id="MQTT-3-8.3-4:qos"),
    pytest.param(Violation(
        "Reserved bits set in the requested-QoS byte of SUBSCRIBE are malformed.",
        "82 06 00 01 00 01 61 41"), id="MQTT-3-8.3-4:reserved"),
    pytest.param(Violation(
        "UNSUBSCRIBE fixed-header flags must be 0b0010; other values are malformed.",
        "a0 05 00 01 00 01 61"), id="MQTT-3.10.1-1"),
    pytest.param(Violation(
        "An UNSUBSCRIBE without any Topic Filter is a protocol violation.",
        "a2 02 00 01"), id="MQTT-3.10.3-2"),
    # mosquitto 2.0.11 replies to a PINGREQ with flags 0b0001 and keeps the connection open.
    pytest.param(Violation(
        "Invalid reserved flags in a fixed header (here PINGREQ 0xC1) close the connection.",
        "c1 00"), id="MQTT-2.2.2-2", marks=pytest.mark.bundled_only),
    pytest.param(Violation(
        "Ill-formed UTF-8 in a Topic Name closes the connection.",
        "30 05 00 02 c3 28 78"), id="MQTT-1.5.3-1:ill-formed"),
    pytest.param(Violation(
        "UTF-8 encoding a surrogate code point (U+D800) closes the connection.",
        "30 06 00 03 ed a0 80 78"), id="MQTT-1.5.3-1:surrogate"),
    pytest.param(Violation(
        "A string containing U+0000 closes the connection.",
        "30 06 00 03 61 00 62 78"), id="MQTT-1.5.3-2"),
    pytest.param(Violation(
        "Topic Names must be at least one character long.",
        "30 03 00 00 78"), id="MQTT-4.7.3-1"),
    pytest.param(Violation(
        "A reserved packet type (15) is a protocol violation that closes the connection.",
        "f0 00"), id="MQTT-4.8.0-1:type-15"),
    pytest.param(Violation(
        "A CONNACK sent by a client is a protocol violation that closes the connection.",
        "20 02 00 00"), id="MQTT-4.8.0-1:connack"),
]


@pytest.mark.parametrize("case", VIOLATIONS)
def test_violation_closes_connection(case: Violation, wire):
    connection = wire.open()
    if case.after_connect:
        connection.send(VALID_CONNECT)
        assert connection.expect(CONNACK).raw == ACCEPTED_CONNACK
    if case.setup is not None:
        request, response = case.setup
        connection.send(bytes.fromhex(request))
        assert connection.read_packet().raw == bytes.fromhex(response)

    connection.send(bytes.fromhex(case.data))

    assert_closed_without_reply(connection, case.meaning, bytes.fromhex(case.reply))


# ---------------------------------------------------------------------------
# Exchanges: literal requests and the literal replies the standard requires. The
# connection stays usable afterwards.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    meaning: str
    # (request, reply) pairs in hex. The reply is every byte the broker sends next.
    steps: tuple[tuple[str, str], ...]
    after_connect: bool = True


EXCHANGES = [
    pytest.param(Exchange(
        "The server accepts Client Identifiers of 1 to 23 characters from [0-9a-zA-Z].",
        (("10 23 00 04 4d 51 54 54 04 02 00 3c 00 17 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d"
          " 6e 6f 70 71 72 73 74 75 76 37", "20 02 00 00"),), after_connect=False), id="MQTT-3.1.3-5"),
    pytest.param(Exchange(
        "A zero-byte Client Identifier with CleanSession 1 is accepted with a server-assigned id.",
        (("10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00", "20 02 00 00"),), after_connect=False),
        id="MQTT-3.1.3-6"),
    pytest.param(Exchange(
        "The server's first packet is CONNACK, also when the client sends more packets right after CONNECT.",
        (("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 77 c0 00", "20 02 00 00 d0 00"),), after_connect=False),
        id="MQTT-3.2.0-1"),
    pytest.param(Exchange(
        "A PINGREQ gets a PINGRESP.",
        (("c0 00", "d0 00"),)), id="MQTT-3.12.4-1"),
    pytest.param(Exchange(
        "A QoS 1 PUBLISH gets a PUBACK with the same Packet Identifier.",
        (("32 06 00 01 61 12 34 78", "40 02 12 34"),)), id="MQTT-2.3.1-6:puback"),
    pytest.param(Exchange(
        "A QoS 2 PUBLISH gets PUBREC, and its PUBREL gets PUBCOMP, all with the same Packet Identifier.",
        (("34 06 00 01 61 ab cd 78", "50 02 ab cd"), ("62 02 ab cd", "70 02 ab cd"))), id="MQTT-4.3.3-2:flow"),
    pytest.param(Exchange(
        "A SUBSCRIBE gets a SUBACK with the same Packet Identifier and the granted QoS.",
        (("82 06 56 78 00 01 61 01", "90 03 56 78 01"),)), id="MQTT-3.8.4-2"),
    pytest.param(Exchange(
        "SUBACK return codes follow the order of the Topic Filters in SUBSCRIBE.",
        (("82 0e 00 07 00 01 61 02 00 01 62 00 00 01 63 01", "90 05 00 07 02 00 01"),)), id="MQTT-3.9.3-1"),
    pytest.param(Exchange(
        "Several filters in one SUBSCRIBE are handled in sequence with one SUBACK; a repeated filter replaces the first.",
        (("82 0a 00 08 00 01 61 02 00 01 61 00", "90 04 00 08 02 00"),)), id="MQTT-3.8.4-4"),
    pytest.param(Exchange(
        "An UNSUBSCRIBE gets an UNSUBACK with the same Packet Identifier.",
        (("82 06 00 0a 00 01 79 00", "90 03 00 0a 00"), ("a2 05 00 0b 00 01 79", "b0 02 00 0b"))),
        id="MQTT-3.10.4-4"),
    pytest.param(Exchange(
        "An UNSUBSCRIBE that matches no subscription still gets an UNSUBACK.",
        (("a2 05 00 09 00 01 7a", "b0 02 00 09"),)), id="MQTT-3.10.4-5"),
    pytest.param(Exchange(
        "An UNSUBSCRIBE with several filters gets exactly one UNSUBACK.",
        (("a2 08 00 0c 00 01 79 00 01 7a", "b0 02 00 0c"), ("c0 00", "d0 00"))), id="MQTT-3.10.4-6"),
]


@pytest.mark.parametrize("case", EXCHANGES)
def test_exchange_returns_required_bytes(case: Exchange, wire):
    connection = wire.open()
    if case.after_connect:
        connection.send(VALID_CONNECT)
        assert connection.expect(CONNACK).raw == ACCEPTED_CONNACK

    for request, reply in case.steps:
        connection.send(bytes.fromhex(request))
        expected = bytes.fromhex(reply)
        received = b""
        while len(received) < len(expected):
            received += connection.read_packet().raw
        assert received == expected, f"{case.meaning} Sent {request}, expected {reply}, got {received.hex(' ')}."

    assert_still_serving(connection)


# ---------------------------------------------------------------------------
# Invalid Topic Filters: the broker must not grant them. It may close the connection
# (a protocol violation) or reply with SUBACK 0x80.
# ---------------------------------------------------------------------------

INVALID_FILTERS = [
    pytest.param("82 09 00 05 00 04 61 2f 62 23 00", id="MQTT-4.7.1-2:not-last"),
    pytest.param("82 0a 00 05 00 05 61 2f 23 2f 62 00", id="MQTT-4.7.1-2:not-alone"),
    pytest.param("82 09 00 05 00 04 61 2b 2f 62 00", id="MQTT-4.7.1-3"),
    pytest.param("82 05 00 05 00 00 00", id="MQTT-4.7.3-1:filter"),
]


@pytest.mark.parametrize("subscribe", INVALID_FILTERS)
def test_invalid_filter_not_granted(subscribe: str, wire):
    connection = wire.open()
    connection.send(VALID_CONNECT)
    connection.expect(CONNACK)

    connection.send(bytes.fromhex(subscribe))
    try:
        reply = connection.read_packet(CLOSE_TIMEOUT)
    except ConnectionClosed:
        return

    assert reply.raw == bytes.fromhex("90 03 00 05 80"), f"The broker granted an invalid filter: {reply!r}."


# ---------------------------------------------------------------------------
# Scenarios: statements about sessions, wills, retained messages, delivery and
# topic matching, each checked with several clients. "Nothing arrives" is checked
# with a sentinel message published after the one that must not arrive.
# ---------------------------------------------------------------------------


def will_published_on_abrupt_close(wire, topic, client_id):
    """The Will Message is published when the connection closes without a DISCONNECT."""
    watcher = wire.connected(client_id("watch"))
    watcher.subscribe(1, [(topic, 2)])
    client = wire.connected(client_id("will"), will=(topic, b"gone", 1, False))

    client.close()
    message = watcher.receive_publish()

    assert message.topic == topic
    assert message.payload == b"gone"
    assert message.qos == 1
    assert message.retain is False


def will_discarded_after_disconnect(wire, topic, client_id):
    """On DISCONNECT the server discards the Will Message without publishing it."""
    watcher = wire.connected(client_id("watch"))
    watcher.subscribe(1, [(topic, 1)])
    client = wire.connected(client_id("will"), will=(topic, b"must not appear", 1, False))

    client.disconnect()
    wire.connected(client_id("pub")).publish(topic, b"sentinel", qos=1)

    assert watcher.publishes_until(topic, b"sentinel") == []


def malformed_disconnect_publishes_will(wire, topic, client_id):
    """A DISCONNECT with reserved bits set closes the connection as an error, so the Will is published."""
    watcher = wire.connected(client_id("watch"))
    watcher.subscribe(1, [(topic, 1)])
    client = wire.connected(client_id("will"), will=(topic, b"broken", 1, False))

    client.send(bytes.fromhex("e1 00"))
    _, closed = client.read_until_closed(CLOSE_TIMEOUT)

    assert closed
    assert watcher.receive_publish().payload == b"broken"


def will_without_retain_is_not_retained(wire, topic, client_id):
    """A Will Message with Will Retain 0 is published as a non-retained message."""
    watcher = wire.connected(client_id("watch"))
    watcher.subscribe(1, [(topic, 1)])
    client = wire.connected(client_id("will"), will=(topic, b"transient", 1, False))
    client.close()
    assert watcher.receive_publish().retain is False

    late = wire.connected(client_id("late"))
    late.subscribe(1, [(topic, 1)])
    wire.connected(client_id("pub")).publish(topic, b"sentinel", qos=1)

    assert late.publishes_until(topic, b"sentinel") == []


def will_with_retain_is_retained(wire, topic, client_id):
    """A Will Message with Will Retain 1 is published as a retained message."""
    watcher = wire.connected(client_id("watch"))
    watcher.subscribe(1, [(topic, 1)])
    client = wire.connected(client_id("will"), will=(topic, b"offline", 1, True))
    client.close()
    assert watcher.receive_publish().payload == b"offline"

    late = wire.connected(client_id("late"))
    late.subscribe(1, [(topic, 1)])
    message = late.receive_publish()

    assert message.payload == b"offline"
    assert message.retain is True
    late.publish(topic, b"", qos=1, retain=True)


def keepalive_expiry_closes_connection(wire, topic, client_id):
    """Without any packet for 1.5 times the Keep Alive, the server closes the connection."""
    client = wire.connected(client_id("idle"), keepalive=1)

    # Within the keepalive the connection must stay open, and a PINGREQ restarts the clock.
    _, closed_early = client.read_until_closed(0.8)
    assert not closed_early, "The broker closed the connection before the keepalive had passed."
    assert_still_serving(client)
    started = time.monotonic()
    # The standard sets no deadline past 1.5 times the keepalive. mosquitto 2.0.11 checks on
    # a coarse timer and closes after about 4.5 s here, so the bound is generous.
    _, closed = client.read_until_closed(KEEPALIVE_CLOSE_TIMEOUT)

    assert closed, f"The broker kept a silent connection with keepalive 1 s open for {KEEPALIVE_CLOSE_TIMEOUT} s."
    assert time.monotonic() - started >= 1.0, "The broker closed the connection within the keepalive period."


def persistent_session_is_resumed(wire, topic, client_id):
    """With CleanSession 0 the server resumes the stored session with its subscriptions and sets Session Present 1."""
    name = client_id("durable")
    first = wire.connected(name, clean_session=False)
    first.subscribe(1, [(topic, 1)])
    first.disconnect()

    second = wire.open()
    second.send(connect_packet(name, clean_session=False))
    connack = second.expect(CONNACK)
    wire.connected(client_id("pub")).publish(topic, b"still subscribed", qos=1)

    assert connack.raw == bytes.fromhex("20 02 01 00")
    assert second.receive_publish().payload == b"still subscribed"


def fresh_persistent_session_reports_no_session(wire, topic, client_id):
    """Without stored session state, CONNACK has Session Present 0."""
    connection = wire.open()
    connection.send(connect_packet(client_id("fresh"), clean_session=False))

    assert connection.expect(CONNACK).raw == bytes.fromhex("20 02 00 00")


def clean_session_reports_no_session(wire, topic, client_id):
    """A connection with CleanSession 1 gets Session Present 0, even where a stored session existed."""
    name = client_id("durable")
    wire.connected(name, clean_session=False).disconnect()

    connection = wire.open()
    connection.send(connect_packet(name, clean_session=True))

    assert connection.expect(CONNACK).raw == bytes.fromhex("20 02 00 00")


def clean_session_discards_stored_session(wire, topic, client_id):
    """CleanSession 1 discards the previous session, so a later CleanSession 0 finds none."""
    name = client_id("durable")
    first = wire.connected(name, clean_session=False)
    first.subscribe(1, [(topic, 1)])
    first.disconnect()
    wire.connected(name, clean_session=True).disconnect()

    third = wire.open()
    third.send(connect_packet(name, clean_session=False))
    connack = third.expect(CONNACK)
    third.subscribe(2, [(f"{topic}/sentinel", 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"old subscription", qos=1)
    publisher.publish(f"{topic}/sentinel", b"sentinel", qos=1)

    assert connack.raw == bytes.fromhex("20 02 00 00")
    assert third.publishes_until(f"{topic}/sentinel") == []


def offline_session_stores_qos1_and_qos2(wire, topic, client_id):
    """While a CleanSession 0 client is away, the server stores QoS 1 and 2 messages for it."""
    name = client_id("durable")
    first = wire.connected(name, clean_session=False)
    first.subscribe(1, [(topic, 2)])
    first.disconnect()
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"qos 1", qos=1, packet_id=1)
    publisher.publish(topic, b"qos 2", qos=2, packet_id=2)

    second = wire.connected(name, clean_session=False)
    received = [second.receive_publish(), second.receive_publish()]

    assert [m.payload for m in received] == [b"qos 1", b"qos 2"]
    assert [m.qos for m in received] == [1, 2]


def retained_message_outlives_session(wire, topic, client_id):
    """Retained messages are not part of the session, so they stay when the publisher's session ends."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"kept", qos=1, retain=True)
    publisher.disconnect()

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])

    assert subscriber.receive_publish().payload == b"kept"
    wire.connected(client_id("clear")).publish(topic, b"", qos=1, retain=True)


def same_client_id_takes_over(wire, topic, client_id):
    """A CONNECT with the Client Identifier of a connected client disconnects the existing client."""
    name = client_id("twin")
    first = wire.connected(name)
    second = wire.connected(name)

    _, closed = first.read_until_closed(CLOSE_TIMEOUT)

    assert closed, "The first connection stayed open after a second client connected with its id."
    assert_still_serving(second)


def rejected_connect_ignores_following_data(wire, topic, client_id):
    """After rejecting a CONNECT, the server processes nothing the client sent after it."""
    connection = wire.open()
    rejected_connect = bytes.fromhex("10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00")
    connection.send(rejected_connect + publish_packet(topic, b"must not be stored", qos=1, retain=True))
    assert_closed_without_reply(connection, "A rejected CONNECT gets CONNACK 0x02 and a close.",
                                bytes.fromhex("20 02 00 02"))

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    wire.connected(client_id("pub")).publish(topic, b"sentinel", qos=1)

    assert subscriber.publishes_until(topic, b"sentinel") == []


def retained_message_reaches_new_subscriber(wire, topic, client_id):
    """A retained message is stored with its QoS and sent with RETAIN 1 to each new matching subscription."""
    wire.connected(client_id("pub")).publish(topic, b"retained", qos=1, retain=True)

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 2)])
    message = subscriber.receive_publish()

    assert message.payload == b"retained"
    assert message.retain is True
    assert message.qos == 1
    wire.connected(client_id("clear")).publish(topic, b"", qos=1, retain=True)


def live_delivery_clears_retain_flag(wire, topic, client_id):
    """A message sent to an established subscription has RETAIN 0, however it was published."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])

    wire.connected(client_id("pub")).publish(topic, b"live", qos=1, retain=True)
    message = subscriber.receive_publish()

    assert message.payload == b"live"
    assert message.retain is False
    wire.connected(client_id("clear")).publish(topic, b"", qos=1, retain=True)


def empty_retained_message_clears_topic(wire, topic, client_id):
    """A zero-byte retained PUBLISH removes the retained message of its topic."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"old", qos=1, retain=True)
    publisher.publish(topic, b"", qos=1, retain=True)

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher.publish(topic, b"sentinel", qos=1)

    assert subscriber.publishes_until(topic, b"sentinel") == []


def empty_retained_message_is_not_stored(wire, topic, client_id):
    """A zero-byte retained message is never stored as a retained message."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"", qos=1, retain=True)

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher.publish(topic, b"sentinel", qos=1)

    assert subscriber.publishes_until(topic, b"sentinel") == []


def qos0_retained_message_replaces_previous(wire, topic, client_id):
    """A retained QoS 0 message replaces the message retained before it on that topic."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"old", qos=1, retain=True)
    publisher.publish(topic, b"new", qos=0, retain=True)

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher.publish(topic, b"sentinel", qos=1)
    received = subscriber.publishes_until(topic, b"sentinel")

    assert [m.payload for m in received] == [b"new"]
    publisher.publish(topic, b"", qos=1, retain=True)


def plain_publish_keeps_retained_message(wire, topic, client_id):
    """A PUBLISH with RETAIN 0 neither stores, replaces nor removes the retained message."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"kept", qos=1, retain=True)
    publisher.publish(topic, b"transient", qos=1)

    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    message = subscriber.receive_publish()

    assert message.payload == b"kept"
    publisher.publish(topic, b"", qos=1, retain=True)


def outgoing_dup_is_independent_of_incoming(wire, topic, client_id):
    """The DUP flag of a delivery depends only on whether the delivery is a retransmission."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher = wire.connected(client_id("pub"))

    publisher.send(publish_packet(topic, b"dup in", qos=1, packet_id=3, dup=True))
    publisher.expect_ack(PUBACK, 3)
    message = subscriber.receive_publish()

    assert message.payload == b"dup in"
    assert message.dup is False


def qos0_delivery_has_no_dup(wire, topic, client_id):
    """A QoS 0 delivery has DUP 0, here a QoS 1 message with DUP 1 downgraded for a QoS 0 subscription."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 0)])
    publisher = wire.connected(client_id("pub"))

    publisher.send(publish_packet(topic, b"dup in", qos=1, packet_id=4, dup=True))
    publisher.expect_ack(PUBACK, 4)
    message = subscriber.receive_publish()

    assert message.qos == 0
    assert message.dup is False


def unacknowledged_publish_after_reconnect(wire, topic, client_id) -> tuple[RawConnection, int, bool]:
    """Return a reconnected persistent subscriber and the packet id and DUP flag of the first delivery."""
    name = client_id("durable")
    first = wire.connected(name, clean_session=False)
    first.subscribe(1, [(topic, 1)])
    wire.connected(client_id("pub")).publish(topic, b"unacknowledged", qos=1)
    delivery = first.expect(PUBLISH)
    first.close()

    second = wire.open()
    second.send(connect_packet(name, clean_session=False))
    assert second.expect(CONNACK).raw == bytes.fromhex("20 02 01 00")
    return second, delivery.packet_id, delivery.dup


def redelivery_sets_dup(wire, topic, client_id):
    """A retransmitted PUBLISH has DUP 1, while the first transmission had DUP 0."""
    second, _, first_dup = unacknowledged_publish_after_reconnect(wire, topic, client_id)
    redelivery = second.expect(PUBLISH)

    assert first_dup is False
    assert redelivery.dup is True


def redelivery_keeps_packet_identifier(wire, topic, client_id):
    """On reconnect with CleanSession 0, unacknowledged PUBLISH packets are re-sent with their original Packet Identifier."""
    second, packet_id, _ = unacknowledged_publish_after_reconnect(wire, topic, client_id)
    redelivery = second.expect(PUBLISH)

    assert redelivery.packet_id == packet_id
    assert redelivery.payload == b"unacknowledged"
    assert redelivery.qos == 1


def unacknowledged_pubrel_resent(wire, topic, client_id):
    """On reconnect with CleanSession 0, an unacknowledged PUBREL is re-sent with its original Packet Identifier."""
    name = client_id("durable")
    first = wire.connected(name, clean_session=False)
    first.subscribe(1, [(topic, 2)])
    wire.connected(client_id("pub")).publish(topic, b"qos 2", qos=2)
    delivery = first.expect(PUBLISH)
    first.send(ack_packet(PUBREC, delivery.packet_id))
    first.expect_ack(PUBREL, delivery.packet_id)
    first.close()

    second = wire.open()
    second.send(connect_packet(name, clean_session=False))
    second.expect(CONNACK)
    resent = second.read_packet()

    assert resent.raw == ack_packet(PUBREL, delivery.packet_id)


def overlapping_subscriptions_use_max_qos(wire, topic, client_id):
    """With overlapping subscriptions, the delivery respects the highest QoS granted among them."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(f"{topic}/#", 2), (f"{topic}/+", 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(f"{topic}/a", b"overlap", qos=2)
    publisher.publish(f"{topic}/a", b"sentinel", qos=2)

    received = subscriber.publishes_until(f"{topic}/a", b"sentinel")

    assert received, "The message matching two subscriptions was not delivered."
    assert max(m.qos for m in received) == 2


def delivery_qos_is_minimum_of_publish_and_grant(wire, topic, client_id):
    """A delivery's QoS is the lower of the published QoS and the QoS granted to the subscription."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"two", qos=2)
    publisher.publish(topic, b"zero", qos=0)
    publisher.publish(topic, b"one", qos=1)

    received = [subscriber.receive_publish() for _ in range(3)]

    assert [(m.payload, m.qos) for m in received] == [(b"two", 1), (b"zero", 0), (b"one", 1)]


def identical_subscription_replaces_and_resends_retained(wire, topic, client_id):
    """SUBSCRIBE with an existing filter replaces that subscription and re-sends matching retained messages."""
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"retained", qos=2, retain=True)
    subscriber = wire.connected(client_id("sub"))
    assert subscriber.subscribe(1, [(topic, 0)]) == [0]
    assert subscriber.receive_publish().qos == 0

    assert subscriber.subscribe(2, [(topic, 2)]) == [2]
    resent = subscriber.receive_publish()
    publisher.publish(topic, b"live", qos=2)
    publisher.publish(topic, b"sentinel", qos=2)
    live = subscriber.publishes_until(topic, b"sentinel")

    assert resent.payload == b"retained"
    assert resent.retain is True
    assert resent.qos == 2
    assert [(m.payload, m.qos) for m in live] == [(b"live", 2)]
    publisher.publish(topic, b"", qos=1, retain=True)


def unsubscribe_compares_filters_exactly(wire, topic, client_id):
    """UNSUBSCRIBE deletes only a subscription whose filter is character-for-character the same."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(f"{topic}/+", 1)])
    subscriber.unsubscribe(2, [f"{topic}/a"])

    wire.connected(client_id("pub")).publish(f"{topic}/a", b"still matched", qos=1)

    assert subscriber.receive_publish().payload == b"still matched"


def unsubscribe_stops_delivery(wire, topic, client_id):
    """Once a subscription is deleted, the server adds no new messages for it."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1), (f"{topic}/sentinel", 1)])
    subscriber.unsubscribe(2, [topic])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"after unsubscribe", qos=1)
    publisher.publish(f"{topic}/sentinel", b"sentinel", qos=1)

    assert subscriber.publishes_until(f"{topic}/sentinel") == []


def reused_qos1_packet_id_is_new_message(wire, topic, client_id):
    """After sending PUBACK, the server treats a PUBLISH with the same Packet Identifier as a new message."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(topic, b"first", qos=1, packet_id=5)
    publisher.publish(topic, b"second", qos=1, packet_id=5)

    received = [subscriber.receive_publish(), subscriber.receive_publish()]

    assert [m.payload for m in received] == [b"first", b"second"]


def repeated_qos2_publish_delivered_once(wire, topic, client_id):
    """Until PUBREL, a repeated QoS 2 PUBLISH gets PUBREC again but is not delivered twice."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 2)])
    publisher = wire.connected(client_id("pub"))

    publisher.send(publish_packet(topic, b"once", qos=2, packet_id=6))
    publisher.expect_ack(PUBREC, 6)
    publisher.send(publish_packet(topic, b"once", qos=2, packet_id=6, dup=True))
    publisher.expect_ack(PUBREC, 6)
    publisher.send(ack_packet(PUBREL, 6))
    publisher.expect_ack(PUBCOMP, 6)
    publisher.publish(topic, b"sentinel", qos=2, packet_id=7)

    received = subscriber.publishes_until(topic, b"sentinel")

    assert [m.payload for m in received] == [b"once"]


def topic_order_preserved_for_qos1(wire, topic, client_id):
    """Messages on one topic reach each subscriber in the order the publisher sent them."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(topic, 1)])
    publisher = wire.connected(client_id("pub"))

    # All PUBLISH packets leave in one write, so the broker has them queued at once.
    count = 50
    publisher.send(b"".join(publish_packet(topic, str(i).encode(), qos=1, packet_id=i + 1) for i in range(count)))
    for i in range(count):
        publisher.expect_ack(PUBACK, i + 1)
    received = [subscriber.receive_publish().payload for _ in range(count)]

    assert received == [str(i).encode() for i in range(count)]


def dollar_topics_skip_leading_wildcards(wire, topic, client_id):
    """Filters that start with a wildcard do not match topic names that start with '$'."""
    dollar_topic = f"${topic}"
    wildcard = wire.connected(client_id("wild"))
    wildcard.subscribe(1, [("#", 1), ("+/+", 1), (f"{topic}/sentinel", 1)])
    explicit = wire.connected(client_id("dollar"))
    explicit.subscribe(1, [(f"${topic.split('/')[0]}/#", 1)])
    publisher = wire.connected(client_id("pub"))

    publisher.publish(dollar_topic, b"dollar", qos=1)
    publisher.publish(f"{topic}/sentinel", b"sentinel", qos=1)
    # '#' also brings every retained message of other tests, so only live deliveries count.
    live = [m.topic for m in wildcard.publishes_until(f"{topic}/sentinel") if not m.retain]

    assert explicit.receive_publish().topic == dollar_topic
    assert live == []


def topic_matching_is_exact(wire, topic, client_id):
    """Topic matching applies no normalisation: case and a trailing '/' make different topics."""
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(f"{topic}/Case", 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(f"{topic}/case", b"lower case", qos=1)
    publisher.publish(f"{topic}/CASE", b"upper case", qos=1)
    publisher.publish(f"{topic}/Case/", b"trailing slash", qos=1)
    publisher.publish(f"{topic}/Case", b"sentinel", qos=1)

    assert subscriber.publishes_until(f"{topic}/Case", b"sentinel") == []


def byte_order_mark_is_kept(wire, topic, client_id):
    """The sequence EF BB BF (U+FEFF) in a string is neither skipped nor stripped."""
    marked = f"\ufeff{topic}"
    subscriber = wire.connected(client_id("sub"))
    subscriber.subscribe(1, [(marked, 1), (topic, 1)])
    publisher = wire.connected(client_id("pub"))
    publisher.publish(marked, b"marked", qos=1)
    publisher.publish(topic, b"sentinel", qos=1)

    received = subscriber.publishes_until(topic, b"sentinel")

    assert [m.payload for m in received] == [b"marked"]
    assert received[0].body[2:2 + 3] == b"\xef\xbb\xbf"


SCENARIOS = [
    pytest.param(will_published_on_abrupt_close, id="MQTT-3.1.2-8"),
    pytest.param(will_discarded_after_disconnect, id="MQTT-3.14.4-3"),
    pytest.param(malformed_disconnect_publishes_will, id="MQTT-3.14.1-1"),
    pytest.param(will_without_retain_is_not_retained, id="MQTT-3.1.2-16"),
    pytest.param(will_with_retain_is_retained, id="MQTT-3.1.2-17"),
    pytest.param(keepalive_expiry_closes_connection, id="MQTT-3.1.2-24"),
    pytest.param(persistent_session_is_resumed, id="MQTT-3.1.2-4"),
    pytest.param(offline_session_stores_qos1_and_qos2, id="MQTT-3.1.2-5"),
    pytest.param(clean_session_discards_stored_session, id="MQTT-3.1.2-6"),
    pytest.param(retained_message_outlives_session, id="MQTT-3.1.2-7"),
    pytest.param(same_client_id_takes_over, id="MQTT-3.1.4-2"),
    pytest.param(rejected_connect_ignores_following_data, id="MQTT-3.1.4-5"),
    pytest.param(clean_session_reports_no_session, id="MQTT-3.2.2-1"),
    pytest.param(persistent_session_is_resumed, id="MQTT-3.2.2-2"),
    pytest.param(fresh_persistent_session_reports_no_session, id="MQTT-3.2.2-3"),
    pytest.param(redelivery_sets_dup, id="MQTT-3.3.1-1"),
    pytest.param(qos0_delivery_has_no_dup, id="MQTT-3.3.1-2"),
    pytest.param(outgoing_dup_is_independent_of_incoming, id="MQTT-3.3.1-3"),
    pytest.param(retained_message_reaches_new_subscriber, id="MQTT-3.3.1-6"),
    pytest.param(qos0_retained_message_replaces_previous, id="MQTT-3.3.1-7"),
    pytest.param(live_delivery_clears_retain_flag, id="MQTT-3.3.1-9"),
    pytest.param(empty_retained_message_clears_topic, id="MQTT-3.3.1-10"),
    pytest.param(empty_retained_message_is_not_stored, id="MQTT-3.3.1-11"),
    pytest.param(plain_publish_keeps_retained_message, id="MQTT-3.3.1-12"),
    # mosquitto with allow_duplicate_messages false (as the reference config sets it) sends
    # one copy at the QoS of the first matching subscription, here 1.
    pytest.param(overlapping_subscriptions_use_max_qos, id="MQTT-3.3.5-1", marks=pytest.mark.bundled_only),
    pytest.param(identical_subscription_replaces_and_resends_retained, id="MQTT-3.8.4-3"),
    pytest.param(delivery_qos_is_minimum_of_publish_and_grant, id="MQTT-3.8.4-6"),
    pytest.param(unsubscribe_compares_filters_exactly, id="MQTT-3.10.4-1"),
    pytest.param(unsubscribe_stops_delivery, id="MQTT-3.10.4-2"),
    pytest.param(reused_qos1_packet_id_is_new_message, id="MQTT-4.3.2-2"),
    pytest.param(repeated_qos2_publish_delivered_once, id="MQTT-4.3.3-2:duplicate"),
    pytest.param(redelivery_keeps_packet_identifier, id="MQTT-4.4.0-1:publish"),
    pytest.param(unacknowledged_pubrel_resent, id="MQTT-4.4.0-1:pubrel"),
    pytest.param(topic_order_preserved_for_qos1, id="MQTT-4.6.0-6"),
    pytest.param(dollar_topics_skip_leading_wildcards, id="MQTT-4.7.2-1"),
    pytest.param(topic_matching_is_exact, id="MQTT-4.7.3-4"),
    pytest.param(byte_order_mark_is_kept, id="MQTT-1.5.3-3"),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_meets_statement(scenario, wire, topic, client_id):
    scenario(wire, topic, client_id)
