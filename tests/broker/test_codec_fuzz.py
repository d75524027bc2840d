"""Arbitrary bytes fed to the decoder raise only the codec's own ProtocolError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker import codec
from broker.codec import PacketReader, ProtocolError
from broker.packets import Connect, Publish, Subscribe

# Valid packets to mutate, so the fuzzer reaches past the fixed header.
SEEDS = [
    codec.encode(Connect(client_id="c", keepalive=10, username="u", password=b"p")),
    codec.encode(Publish("a/b", b"payload", qos=1, packet_id=3)),
    codec.encode(Subscribe(4, (("a/#", 1),))),
]


def _feed_all(reader: PacketReader, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            reader.feed(chunk)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_of_arbitrary_bytes_raises_only_protocol_error(data):
    try:
        codec.decode(data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_reader_of_arbitrary_chunks_raises_only_protocol_error(data, cuts):
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])]

    _feed_all(PacketReader(max_packet_size=200), chunks)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=255)), max_size=4),
    st.integers(min_value=1, max_value=7),
)
def test_reader_of_mutated_packets_raises_only_protocol_error(seed, flips, chunk_size):
    data = bytearray(seed)
    for index, value in flips:
        if index < len(data):
            data[index] = value
    chunks = [bytes(data[i:i + chunk_size]) for i in range(0, len(data), chunk_size)]

    _feed_all(PacketReader(), chunks)
