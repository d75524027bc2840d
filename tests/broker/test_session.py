"""Session state without sockets: QoS flows, in-flight window, queue bound, redelivery, takeover."""

from __future__ import annotations

import pytest

from broker import codec
from broker.packets import Publish, Pubcomp, Pubrel
from broker.session import Message, Session, SessionStore


def make_session(max_inflight: int = 3, max_queued: int = 5, clean_session: bool = False) -> Session:
    return Session("client", clean_session, max_inflight=max_inflight, max_queued=max_queued)


def decode_publish(data: bytes) -> Publish:
    packet = codec.decode(data)
    assert isinstance(packet, Publish)
    return packet


def test_qos0_delivery_is_never_queued():
    session = make_session(max_inflight=1)
    session.deliver(Message("t", b"1", 1), 1)

    data = session.deliver(Message("t", b"0"), 0)

    assert decode_publish(data) == Publish("t", b"0")
    assert len(session.queue) == 0


def test_qos1_delivery_waits_for_puback():
    session = make_session()

    packet = decode_publish(session.deliver(Message("t", b"x", 1), 1))

    assert packet.qos == 1
    assert packet.packet_id in session.inflight
    assert session.on_puback(packet.packet_id) is True
    assert session.inflight == {}
    assert session.on_puback(packet.packet_id) is False


def test_qos2_flow_goes_through_pubrec_and_pubcomp():
    session = make_session()
    packet = decode_publish(session.deliver(Message("t", b"x", 2), 2))

    assert session.on_pubcomp(packet.packet_id) is False
    assert codec.decode(session.on_pubrec(packet.packet_id)) == Pubrel(packet.packet_id)
    assert session.inflight[packet.packet_id][2] is True
    assert session.on_puback(packet.packet_id) is False
    assert session.on_pubcomp(packet.packet_id) is True
    assert session.inflight == {}


def test_inflight_window_queues_overflow():
    session = make_session(max_inflight=2)
    sent = [session.deliver(Message("t", bytes([i]), 1), 1) for i in range(4)]

    assert [data is not None for data in sent] == [True, True, False, False]
    assert len(session.inflight) == 2
    assert len(session.queue) == 2

    first = decode_publish(sent[0])
    session.on_puback(first.packet_id)
    refill = [decode_publish(data) for data in session.send_queued()]

    assert [p.payload for p in refill] == [b"\x02"]
    assert len(session.inflight) == 2
    assert len(session.queue) == 1


def test_queued_messages_keep_order_behind_earlier_ones():
    session = make_session(max_inflight=1)
    session.deliver(Message("t", b"a", 1), 1)
    session.deliver(Message("t", b"b", 1), 1)
    session.inflight.clear()

    assert session.deliver(Message("t", b"c", 1), 1) is None
    assert [m.payload for m, _ in session.queue] == [b"b", b"c"]


def test_try_send_leaves_full_window_unqueued():
    session = make_session(max_inflight=1)
    first = session.try_send(Message("t", b"a", 1), 1)

    second = session.try_send(Message("t", b"b", 1), 1)

    assert decode_publish(first).payload == b"a"
    assert second is None
    assert len(session.inflight) == 1
    assert len(session.queue) == 0


def test_try_send_waits_behind_queued_messages():
    session = make_session(max_inflight=1)
    session.deliver(Message("t", b"a", 1), 1)
    session.deliver(Message("t", b"b", 1), 1)
    session.inflight.clear()

    assert session.try_send(Message("t", b"c", 1), 1) is None
    assert [m.payload for m, _ in session.queue] == [b"b"]


@pytest.mark.parametrize(
    ("max_queued", "high_water", "low_water"),
    [(1, 1, 0), (2, 1, 0), (5, 2, 1), (50, 25, 12), (1000, 500, 250)],
)
def test_queue_water_marks_follow_max_queued(max_queued, high_water, low_water):
    session = make_session(max_queued=max_queued)

    assert session.queue_high_water == high_water
    assert session.queue_low_water == low_water


def test_queue_congested_at_half_and_drained_at_quarter():
    session = make_session(max_inflight=1, max_queued=8)
    session.deliver(Message("t", b"in flight", 1), 1)
    states = []
    for number in range(6):
        session.deliver(Message("t", bytes([number]), 1), 1)
        states.append((len(session.queue), session.is_congested(), session.is_drained()))

    assert states == [
        (1, False, True), (2, False, True), (3, False, False),
        (4, True, False), (5, True, False), (6, True, False),
    ]


def test_queue_drains_as_acknowledgements_arrive():
    session = make_session(max_inflight=1, max_queued=8)
    packet_id = decode_publish(session.deliver(Message("t", b"first", 1), 1)).packet_id
    for number in range(4):
        session.deliver(Message("t", bytes([number]), 1), 1)
    drained = []
    while session.queue:
        assert session.on_puback(packet_id) is True
        packet_id = decode_publish(session.send_queued()[0]).packet_id
        drained.append(session.is_drained())

    assert session.is_congested() is False
    assert drained == [False, True, True, True]


def test_offline_queue_drops_oldest_past_its_bound():
    session = make_session(max_inflight=1, max_queued=3)
    results = [session.enqueue(Message("t", bytes([i]), 1), 1) for i in range(5)]

    assert results == [True, True, True, False, False]
    assert [m.payload for m, _ in session.queue] == [b"\x02", b"\x03", b"\x04"]
    assert session.dropped == 2


def test_offline_queue_ignores_qos0():
    session = make_session()

    assert session.enqueue(Message("t", b"x"), 0) is True
    assert len(session.queue) == 0


def test_resume_resends_unacknowledged_with_dup_in_order():
    session = make_session(max_inflight=3)
    first = decode_publish(session.deliver(Message("a", b"1", 1), 1))
    second = decode_publish(session.deliver(Message("b", b"2", 2), 2))
    third = decode_publish(session.deliver(Message("c", b"3", 2), 2))
    session.on_pubrec(third.packet_id)
    session.enqueue(Message("d", b"4", 1), 1)

    resent = [codec.decode(data) for data in session.resume()]

    assert resent[0] == Publish("a", b"1", 1, dup=True, packet_id=first.packet_id)
    assert resent[1] == Publish("b", b"2", 2, dup=True, packet_id=second.packet_id)
    assert resent[2] == Pubrel(third.packet_id)
    assert len(resent) == 3
    assert len(session.queue) == 1


def test_resume_sends_queue_when_window_has_room():
    session = make_session(max_inflight=5)
    session.enqueue(Message("q", b"1", 1), 1)
    session.enqueue(Message("q", b"2", 2), 2)

    resent = [decode_publish(data) for data in session.resume()]

    assert [(p.payload, p.qos, p.dup) for p in resent] == [(b"1", 1, False), (b"2", 2, False)]


def test_incoming_qos2_duplicate_is_not_routed_twice():
    session = make_session()

    assert session.on_publish_qos2(9) is True
    assert session.on_publish_qos2(9) is False
    assert codec.decode(session.on_pubrel(9)) == Pubcomp(9)
    assert session.on_publish_qos2(9) is True


def test_packet_ids_skip_ids_still_in_flight():
    session = make_session(max_inflight=10)
    session._next_packet_id = 65535
    ids = [decode_publish(session.deliver(Message("t", b"", 1), 1)).packet_id for _ in range(2)]
    assert ids == [65535, 1]

    session.on_puback(1)
    session._next_packet_id = 65535
    next_id = decode_publish(session.deliver(Message("t", b"", 1), 1)).packet_id

    assert next_id == 1


def test_message_encoding_is_shared_and_retain_flag_kept():
    message = Message("r", b"v", 1, retain=True)

    assert message.encode(0) is message.encode(0)
    assert decode_publish(message.encode(0)).retain is True
    assert decode_publish(message.encode(1, 3)) == Publish("r", b"v", 1, retain=True, packet_id=3)
    assert decode_publish(message.with_retain(False).encode(0)).retain is False


def test_store_resumes_persistent_session():
    store = SessionStore(max_inflight=5, max_queued=5)
    session, present, discarded = store.open("c", clean_session=False)
    session.subscriptions["a/#"] = 1
    store.close(session)

    resumed, present, discarded = store.open("c", clean_session=False)

    assert resumed is session
    assert present is True
    assert discarded is None
    assert len(store) == 1


def test_store_clean_session_replaces_persistent_one():
    store = SessionStore(max_inflight=5, max_queued=5)
    old, _, _ = store.open("c", clean_session=False)

    new, present, discarded = store.open("c", clean_session=True)

    assert new is not old
    assert present is False
    assert discarded is old
    assert store.close(new) is True
    assert len(store) == 0


def test_store_takeover_of_clean_session_returns_old_one():
    store = SessionStore(max_inflight=5, max_queued=5)
    old, _, _ = store.open("c", clean_session=True)
    old.connection = object()

    new, present, discarded = store.open("c", clean_session=True)

    assert discarded is old
    assert store.get("c") is new
    assert store.close(old) is True
    assert store.get("c") is new


def test_store_keeps_persistent_session_after_close():
    store = SessionStore(max_inflight=5, max_queued=5)
    session, _, _ = store.open("c", clean_session=False)
    session.connection = object()

    assert store.close(session) is False
    assert session.connection is None
    assert store.get("c") is session
