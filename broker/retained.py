"""Retained messages by topic name."""

from __future__ import annotations

from collections.abc import Iterator

from broker.session import Message
from broker.topics import MULTI_LEVEL, SINGLE_LEVEL, matches


class RetainedStore:
    """The last retained message of each topic; an empty payload clears a topic."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        self._messages: dict[str, Message] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def store(self, message: Message) -> None:
        """Keep `message` as its topic's retained message, or clear the topic when its payload is empty."""
        if message.payload:
            self._messages[message.topic] = message if message.retain else message.with_retain(True)
        else:
            self._messages.pop(message.topic, None)

    def get(self, topic: str) -> Message | None:
        return self._messages.get(topic)

    def match(self, topic_filter: str) -> Iterator[Message]:
        """Yield the retained messages whose topic matches `topic_filter`, with RETAIN set."""
        if SINGLE_LEVEL not in topic_filter and MULTI_LEVEL not in topic_filter:
            message = self._messages.get(topic_filter)
            if message is not None:
                yield message
            return
        # NOTE: a wildcard filter scans every retained topic, so its cost grows with the number of retained topics.
        for topic, message in list(self._messages.items()):
            if matches(topic_filter, topic):
                yield message
