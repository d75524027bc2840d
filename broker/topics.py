"""MQTT 3.1.1 topic names and filters: validation, matching and a subscription trie.

A PUBLISH carries a topic name and a SUBSCRIBE carries topic filters. Only filters may
contain the wildcards '+' (exactly one level) and '#' (every remaining level, including
none, so 'a/#' also matches 'a'). Levels are separated by '/' and may be
empty ('a//b' has three levels). A filter that starts with a wildcard never matches a
topic name that starts with '$', so '#' does not deliver '$SYS/...' messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Hashable, TypeVar

T = TypeVar("T")

# Topic strings travel as a UTF-8 string with a 16-bit length prefix (MQTT 3.1.1, 1.5.3).
MAX_TOPIC_BYTES = 65535

SINGLE_LEVEL = "+"
MULTI_LEVEL = "#"
SEPARATOR = "/"


class InvalidTopicError(ValueError):
    """A topic name or filter that breaks the MQTT rules."""


def _check_text(text: str, kind: str) -> None:
    """Raise InvalidTopicError for the rules names and filters share."""
    if not text:
        raise InvalidTopicError(f"The {kind} is empty; MQTT requires at least one character.")
    if "\x00" in text:
        raise InvalidTopicError(f"The {kind} {text!r} contains U+0000, which MQTT forbids in strings.")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTopicError(
            f"The {kind} {text!r} contains a lone surrogate, which is not valid UTF-8."
        ) from None
    if size > MAX_TOPIC_BYTES:
        raise InvalidTopicError(
            f"The {kind} is {size} bytes of UTF-8 but MQTT allows at most {MAX_TOPIC_BYTES}."
        )


def validate_topic_name(name: str) -> None:
    """Raise InvalidTopicError unless `name` is a valid topic name for PUBLISH."""
    _check_text(name, "topic name")
    if SINGLE_LEVEL in name or MULTI_LEVEL in name:
        raise InvalidTopicError(
            f"The topic name {name!r} contains a wildcard ('+' or '#'); "
            "wildcards are allowed only in subscription filters."
        )


def validate_topic_filter(topic_filter: str) -> None:
    """Raise InvalidTopicError unless `topic_filter` is a valid filter for SUBSCRIBE."""
    _check_text(topic_filter, "topic filter")
    levels = topic_filter.split(SEPARATOR)
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if MULTI_LEVEL in level and (level != MULTI_LEVEL or index != last):
            raise InvalidTopicError(
                f"The topic filter {topic_filter!r} has '#' in level {index + 1}; "
                "'#' must be a whole level and the last one, as in 'sensors/#'."
            )
        if SINGLE_LEVEL in level and level != SINGLE_LEVEL:
            raise InvalidTopicError(
                f"The topic filter {topic_filter!r} has '+' inside level {index + 1} ({level!r}); "
                "'+' must be a whole level, as in 'sensors/+/temperature'."
            )


def _is_wildcard(level: str) -> bool:
    return level == SINGLE_LEVEL or level == MULTI_LEVEL


def matches(topic_filter: str, topic: str) -> bool:
    """Return whether the valid filter `topic_filter` matches the valid topic name `topic`."""
    filter_levels = topic_filter.split(SEPARATOR)
    topic_levels = topic.split(SEPARATOR)
    if topic.startswith("$") and _is_wildcard(filter_levels[0]):
        return False

    for index, level in enumerate(filter_levels):
        if level == MULTI_LEVEL:
            return True
        if index == len(topic_levels):
            return False
        if level != SINGLE_LEVEL and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def _dollar_mismatch(first: str, second: str) -> bool:
    """Return whether a wildcard first level faces a literal first level starting with '$'."""
    return (_is_wildcard(first) and second.startswith("$")) or (
        _is_wildcard(second) and first.startswith("$")
    )


# A topic level with no characters, as in "a//b".
EMPTY_LEVEL = ""


def filters_overlap(first: str, second: str) -> bool:
    """Return whether some topic name matches both valid filters."""
    first_levels = first.split(SEPARATOR)
    second_levels = second.split(SEPARATOR)
    if _dollar_mismatch(first_levels[0], second_levels[0]):
        return False

    for a, b in zip(first_levels, second_levels):
        if a == MULTI_LEVEL or b == MULTI_LEVEL:
            return True
        if a != SINGLE_LEVEL and b != SINGLE_LEVEL and a != b:
            return False
    if len(first_levels) == len(second_levels):
        return True
    # One filter is longer: they still overlap when its next level is '#', which also
    # matches the parent level where the shorter filter ends.
    shorter_length = min(len(first_levels), len(second_levels))
    longer = first_levels if len(first_levels) > len(second_levels) else second_levels
    if longer[shorter_length] != MULTI_LEVEL:
        return False
    # The shared topic is then the shorter filter's own depth. At depth one it must not be
    # a single empty level, because the empty string is not a valid topic name.
    return shorter_length > 1 or EMPTY_LEVEL not in (first_levels[0], second_levels[0])


def filter_covers(wide: str, narrow: str) -> bool:
    """Return whether every topic name that valid filter `narrow` matches also matches `wide`."""
    wide_levels = wide.split(SEPARATOR)
    narrow_levels = narrow.split(SEPARATOR)
    if _is_wildcard(wide_levels[0]) and narrow_levels[0].startswith("$"):
        return False

    for index, level in enumerate(wide_levels):
        if level == MULTI_LEVEL:
            return True
        if index == len(narrow_levels):
            return False
        other = narrow_levels[index]
        if other == MULTI_LEVEL:
            # '#' here matches any depth from the parent level on, and '+' * k + '#' in
            # `wide` matches k or more levels. The parent level counts unless the topic there
            # would be empty or the empty string: at index 0 every topic still has one level,
            # and after a single empty level the topic "" is not a valid name.
            min_extra_levels = 1 if index == 0 or (index == 1 and narrow_levels[0] == EMPTY_LEVEL) else 0
            rest = wide_levels[index:]
            plus_count = len(rest) - 1
            return rest[-1] == MULTI_LEVEL and rest[:-1] == [SINGLE_LEVEL] * plus_count and plus_count <= min_extra_levels
        if level == SINGLE_LEVEL:
            continue
        if other == SINGLE_LEVEL or other != level:
            return False
    return len(wide_levels) == len(narrow_levels)


class _Node(Generic[T]):
    """One level of the trie; `entries` end at this level, `multi` end in '#' below it."""

    __slots__ = ("children", "plus", "entries", "multi")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.plus: _Node[T] | None = None
        self.entries: dict[Hashable, T] = {}
        self.multi: dict[Hashable, T] = {}

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.entries or self.multi)


class SubscriptionTree(Generic[T]):
    """Subscriptions indexed by filter level, so a PUBLISH visits only matching branches.

    Each entry is a (filter, key) pair holding one value; a key is usually a client id
    and the value its granted QoS. Nodes left empty by `remove` are pruned.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, key: Hashable, value: T) -> bool:
        """Store `value` for (`topic_filter`, `key`); return True when the pair is new.

        Raises InvalidTopicError for an invalid filter.
        """
        validate_topic_filter(topic_filter)
        node = self._root
        levels = topic_filter.split(SEPARATOR)
        multi = levels[-1] == MULTI_LEVEL
        if multi:
            levels.pop()

        for level in levels:
            if level == SINGLE_LEVEL:
                if node.plus is None:
                    node.plus = _Node()
                node = node.plus
            else:
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Node()
                node = child

        target = node.multi if multi else node.entries
        new = key not in target
        target[key] = value
        if new:
            self._count += 1
        return new

    def remove(self, topic_filter: str, key: Hashable) -> bool:
        """Remove (`topic_filter`, `key`); return False when it was not stored."""
        levels = topic_filter.split(SEPARATOR)
        multi = levels[-1] == MULTI_LEVEL
        if multi:
            levels.pop()

        path: list[tuple[_Node[T], str]] = []
        node: _Node[T] | None = self._root
        for level in levels:
            parent = node
            node = parent.plus if level == SINGLE_LEVEL else parent.children.get(level)
            if node is None:
                return False
            path.append((parent, level))

        target = node.multi if multi else node.entries
        if key not in target:
            return False
        del target[key]
        self._count -= 1

        # Prune from the deepest level up, so unsubscribed branches free their memory.
        for parent, level in reversed(path):
            if not node.is_empty():
                break
            if level == SINGLE_LEVEL:
                parent.plus = None
            else:
                del parent.children[level]
            node = parent
        return True

    def match(self, topic: str) -> Iterator[tuple[Hashable, T]]:
        """Yield (key, value) once per stored filter that matches the valid topic name `topic`.

        A key subscribed through several matching filters is yielded once for each.
        """
        levels = topic.split(SEPARATOR)
        depth = len(levels)
        # Wildcards at the first level never match topics that start with '$'.
        dollar = topic.startswith("$")
        stack: list[tuple[_Node[T], int]] = [(self._root, 0)]
        while stack:
            node, index = stack.pop()
            if node.multi and not (dollar and index == 0):
                yield from node.multi.items()
            if index == depth:
                if node.entries:
                    yield from node.entries.items()
                continue
            if node.plus is not None and not (dollar and index == 0):
                stack.append((node.plus, index + 1))
            child = node.children.get(levels[index])
            if child is not None:
                stack.append((child, index + 1))

    def node_count(self) -> int:
        """Count the trie's nodes, the root included; used to check that pruning works."""
        count = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
            if node.plus is not None:
                stack.append(node.plus)
        return count
