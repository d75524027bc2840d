"""Subscriptions of all sessions and the lookup of who receives a PUBLISH."""

from __future__ import annotations

from broker.session import Session
from broker.topics import SubscriptionTree


class Router:
    """Topic filters of every session, indexed for matching topic names."""

    __slots__ = ("_tree",)

    def __init__(self) -> None:
        self._tree: SubscriptionTree[int] = SubscriptionTree()

    def __len__(self) -> int:
        """Number of (topic filter, session) subscriptions."""
        return len(self._tree)

    def subscribe(self, session: Session, topic_filter: str, qos: int) -> bool:
        """Add or replace a subscription; return True when it is new.

        Raises InvalidTopicError for an invalid filter.
        """
        new = self._tree.add(topic_filter, session, qos)
        session.subscriptions[topic_filter] = qos
        return new

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """Remove a subscription; return False when the session did not have it."""
        session.subscriptions.pop(topic_filter, None)
        return self._tree.remove(topic_filter, session)

    def drop_session(self, session: Session) -> None:
        """Remove every subscription of a session that ends."""
        for topic_filter in session.subscriptions:
            self._tree.remove(topic_filter, session)
        session.subscriptions.clear()

    def targets(self, topic: str) -> dict[Session, int]:
        """Return each session subscribed to `topic` with its highest granted QoS."""
        targets: dict[Session, int] = {}
        for session, qos in self._tree.match(topic):
            if qos > targets.get(session, -1):
                targets[session] = qos
        return targets
