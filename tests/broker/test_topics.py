"""Topic validation, matching, filter algebra and the subscription trie."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.topics import (
    MAX_TOPIC_BYTES,
    InvalidTopicError,
    SubscriptionTree,
    filter_covers,
    filters_overlap,
    matches,
    validate_topic_filter,
    validate_topic_name,
)

MATCH_CASES = [
    # (filter, topic, expected)
    ("a", "a", True),
    ("a", "b", False),
    ("a", "a/b", False),
    ("a/b", "a", False),
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("A", "a", False),
    ("a/", "a", False),
    ("a/", "a/", True),
    ("/a", "/a", True),
    ("/a", "a", False),
    ("+", "a", True),
    ("+", "a/b", False),
    ("+", "/", False),
    ("+/+", "/", True),
    ("+/b", "a/b", True),
    ("+/b", "a/c", False),
    ("a/+", "a", False),
    ("a/+", "a/", True),
    ("a/+/b", "a//b", True),
    ("a/+/b", "a/x/b", True),
    ("a/+/b", "a/x/y/b", False),
    ("+/+/+", "a//b", True),
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("a/#", "a", True),
    ("a/#", "a/", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("a/#", "b/a", False),
    ("a/b/#", "a", False),
    ("a/b/#", "a/b", True),
    ("+/#", "a", True),
    ("+/#", "a/b/c", True),
    ("a/+/#", "a", False),
    ("a/+/#", "a/b", True),
    ("/#", "/", True),
    ("/#", "a", False),
    ("#", "$SYS", False),
    ("#", "$SYS/broker/uptime", False),
    ("+", "$SYS", False),
    ("+/broker/uptime", "$SYS/broker/uptime", False),
    ("+/#", "$SYS/broker", False),
    ("$SYS/#", "$SYS", True),
    ("$SYS/#", "$SYS/broker/uptime", True),
    ("$SYS/broker/+", "$SYS/broker/uptime", True),
    ("$SYS/+/uptime", "$SYS/broker/uptime", True),
    ("$SYS/broker/uptime", "$SYS/broker/uptime", True),
    ("a/#", "a/$SYS", True),
    ("a/+", "a/$x", True),
    ("$SYS/#", "SYS/x", False),
    ("#", "x$", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_CASES)
def test_matches_follows_mqtt_rules(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    "name",
    ["a", "/", "a//b", "$SYS/broker", "a b", "ü/€", "x" * MAX_TOPIC_BYTES, "€" * (MAX_TOPIC_BYTES // 3)],
)
def test_validate_topic_name_accepts_valid(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("a/+", "wildcard"),
        ("a/#", "wildcard"),
        ("a+b", "wildcard"),
        ("#", "wildcard"),
        ("a\x00b", "U+0000"),
        ("x" * (MAX_TOPIC_BYTES + 1), "65536 bytes"),
        ("€" * (MAX_TOPIC_BYTES // 3 + 1), "65538 bytes"),
        ("a\ud800", "surrogate"),
    ],
)
def test_validate_topic_name_rejects_invalid(name: str, fragment: str) -> None:
    with pytest.raises(InvalidTopicError) as caught:
        validate_topic_name(name)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "topic_filter",
    ["a", "#", "+", "+/+", "a/#", "a/+/b", "+/#", "/#", "a//+", "$SYS/#", "/", "x" * MAX_TOPIC_BYTES],
)
def test_validate_topic_filter_accepts_valid(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "fragment"),
    [
        ("", "empty"),
        ("a/#/b", "'#' in level 2"),
        ("#/a", "'#' in level 1"),
        ("a#", "'#' in level 1"),
        ("a/b#", "'#' in level 2"),
        ("##", "'#' in level 1"),
        ("a+", "'+' inside level 1"),
        ("a/+b/c", "'+' inside level 2"),
        ("++", "'+' inside level 1"),
        ("a/\x00", "U+0000"),
        ("x" * (MAX_TOPIC_BYTES + 1), "65536 bytes"),
    ],
)
def test_validate_topic_filter_rejects_invalid(topic_filter: str, fragment: str) -> None:
    with pytest.raises(InvalidTopicError) as caught:
        validate_topic_filter(topic_filter)
    assert fragment in str(caught.value)


def test_invalid_topic_error_is_value_error() -> None:
    assert issubclass(InvalidTopicError, ValueError)


OVERLAP_CASES = [
    ("secret/#", "#", True),
    ("secret/#", "secret/+", True),
    ("secret/#", "secret", True),
    ("secret/#", "+", True),
    ("secret/#", "+/x", True),
    ("secret/#", "public/#", False),
    ("secret/#", "secrets/x", False),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("a/+/c", "a/b/+", True),
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("$SYS/#", "#", False),
    ("$SYS/#", "+/broker", False),
    ("$SYS/#", "$SYS/broker/+", True),
    ("#", "+", True),
    ("+/+", "+", False),
]


@pytest.mark.parametrize(("first", "second", "expected"), OVERLAP_CASES)
def test_filters_overlap_table(first: str, second: str, expected: bool) -> None:
    assert filters_overlap(first, second) is expected
    assert filters_overlap(second, first) is expected


COVER_CASES = [
    ("#", "a/b", True),
    ("#", "#", True),
    ("#", "+/#", True),
    ("#", "$SYS/x", False),
    ("+/#", "#", True),
    ("secret/#", "secret/+", True),
    ("secret/#", "secret", True),
    ("secret/#", "#", False),
    ("secret/+", "secret/#", False),
    ("secret/+", "secret/a", True),
    ("secret/a", "secret/+", False),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/+/c", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("$SYS/#", "$SYS/broker/+", True),
    ("+/broker", "$SYS/broker", False),
]


@pytest.mark.parametrize(("wide", "narrow", "expected"), COVER_CASES)
def test_filter_covers_table(wide: str, narrow: str, expected: bool) -> None:
    assert filter_covers(wide, narrow) is expected


# A small universe of levels for brute-force checks; '$s' exercises the '$' rule.
LITERALS = ["a", "b", "", "$s"]
filter_level = st.sampled_from([*LITERALS, "+"])


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(filter_level, min_size=1, max_size=3))
    if draw(st.booleans()):
        levels.append("#")
    # A single empty level would be the empty string, which is not a valid filter.
    return "/".join(levels) or "a"


topic_names = st.lists(st.sampled_from([*LITERALS, "c"]), min_size=1, max_size=4).map("/".join).filter(bool)

# Every topic name up to five levels over the literals plus one that no filter names,
# which is enough to find a witness for filters of up to three levels plus '#'.
UNIVERSE = [
    "/".join(levels)
    for depth in range(1, 6)
    for levels in itertools.product([*LITERALS, "c"], repeat=depth)
    if levels != ("",)
]


@settings(max_examples=150, deadline=None, database=None)
@given(first=topic_filters(), second=topic_filters())
@example(first="+", second="/#")
@example(first="/#", second="+")
def test_filters_overlap_agrees_with_brute_force(first: str, second: str) -> None:
    witness = any(matches(first, topic) and matches(second, topic) for topic in UNIVERSE)
    assert filters_overlap(first, second) is witness


@settings(max_examples=150, deadline=None, database=None)
@given(wide=topic_filters(), narrow=topic_filters())
@example(wide="+/+/#", narrow="/#")
@example(wide="/+/#", narrow="/#")
def test_filter_covers_agrees_with_brute_force(wide: str, narrow: str) -> None:
    covered = all(matches(wide, topic) for topic in UNIVERSE if matches(narrow, topic))
    assert filter_covers(wide, narrow) is covered


def test_tree_add_reports_new_and_replaces_value() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    assert tree.add("a/b", "c1", 0) is True
    assert tree.add("a/b", "c1", 2) is False
    assert len(tree) == 1
    assert list(tree.match("a/b")) == [("c1", 2)]


def test_tree_add_rejects_invalid_filter() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    with pytest.raises(InvalidTopicError):
        tree.add("a/#/b", "c1", 0)
    assert len(tree) == 0
    assert tree.node_count() == 1


def test_tree_match_yields_each_overlapping_filter() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a/b", "c1", 0)
    tree.add("a/+", "c1", 1)
    tree.add("#", "c1", 2)
    tree.add("a/#", "c2", 1)
    tree.add("+/b", "c3", 0)
    tree.add("a/c", "c4", 0)

    found = sorted(tree.match("a/b"))

    assert found == [("c1", 0), ("c1", 1), ("c1", 2), ("c2", 1), ("c3", 0)]


def test_tree_match_hash_includes_parent_level() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a/#", "c1", 1)
    assert list(tree.match("a")) == [("c1", 1)]
    assert list(tree.match("b")) == []


def test_tree_match_skips_wildcards_for_dollar_topics() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("#", "all", 0)
    tree.add("+/broker/uptime", "plus", 0)
    tree.add("$SYS/#", "sys", 0)
    tree.add("$SYS/+/uptime", "sys-plus", 0)
    assert sorted(key for key, _ in tree.match("$SYS/broker/uptime")) == ["sys", "sys-plus"]
    assert sorted(key for key, _ in tree.match("x/broker/uptime")) == ["all", "plus"]


def test_tree_match_plus_on_empty_level() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a/+/b", "c1", 0)
    assert list(tree.match("a//b")) == [("c1", 0)]
    assert list(tree.match("a/b")) == []


def test_tree_remove_returns_whether_stored() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a/+", "c1", 0)
    tree.add("a/+", "c2", 0)
    assert tree.remove("a/+", "c3") is False
    assert tree.remove("a/b", "c1") is False
    assert tree.remove("a/#", "c1") is False
    assert tree.remove("a/+", "c1") is True
    assert tree.remove("a/+", "c1") is False
    assert len(tree) == 1
    assert list(tree.match("a/x")) == [("c2", 0)]


def test_tree_remove_prunes_empty_nodes() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    filters = ["a/b/c/d", "a/b/+/d", "a/+/#", "x/#", "#", "+", "a//b", "$SYS/broker/+"]
    for index, topic_filter in enumerate(filters):
        tree.add(topic_filter, f"c{index}", 0)
    assert tree.node_count() > 1

    for index, topic_filter in enumerate(filters):
        assert tree.remove(topic_filter, f"c{index}")

    assert len(tree) == 0
    assert tree.node_count() == 1


def test_tree_remove_keeps_shared_branch() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add("a/b/c", "c1", 0)
    tree.add("a/b", "c2", 0)
    nodes = tree.node_count()
    tree.remove("a/b/c", "c1")
    assert tree.node_count() == nodes - 1
    assert list(tree.match("a/b")) == [("c2", 0)]


@settings(max_examples=150, deadline=None, database=None)
@given(
    entries=st.lists(st.tuples(topic_filters(), st.sampled_from(["c1", "c2", "c3"])), max_size=12),
    topics=st.lists(topic_names, min_size=1, max_size=6),
    removed=st.integers(min_value=0, max_value=12),
)
def test_tree_match_agrees_with_matches(
    entries: list[tuple[str, str]], topics: list[str], removed: int
) -> None:
    tree: SubscriptionTree[str] = SubscriptionTree()
    stored: dict[tuple[str, str], str] = {}
    for topic_filter, key in entries:
        tree.add(topic_filter, key, topic_filter)
        stored[(topic_filter, key)] = topic_filter
    for topic_filter, key in list(stored)[:removed]:
        assert tree.remove(topic_filter, key)
        del stored[(topic_filter, key)]
    assert len(tree) == len(stored)

    for topic in topics:
        expected = sorted((key, f) for (f, key) in stored if matches(f, topic))
        assert sorted(tree.match(topic)) == expected

    for topic_filter, key in list(stored):
        tree.remove(topic_filter, key)
    assert tree.node_count() == 1
