"""Broker counters and their $SYS topics and Prometheus values.

Topic names follow mosquitto's `$SYS/broker/...` names where mosquitto has one; the pool
and process topics are this broker's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from broker.pool import ClientPool

SYS_PREFIX = "$SYS/broker/"


@dataclass(slots=True)
class BrokerStats:
    """Counters the server increments; every count starts at 0."""

    clients_connected: int = 0
    # Highest number of clients connected at the same time since startup.
    clients_maximum: int = 0
    # Connected clients plus disconnected persistent sessions.
    clients_total: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    # PUBLISH deliveries dropped because a queue or the in-flight window was full.
    publish_dropped: int = 0
    # PUBLISH packets rejected by an access rule.
    publish_denied: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    subscriptions: int = 0
    retained: int = 0
    # CONNECTs turned away: max_connections reached or authentication failed.
    connections_rejected: int = 0
    malformed_packets: int = 0
    # QoS 0 deliveries dropped because the receiver's outgoing buffer was above the high water mark.
    qos0_dropped_slow: int = 0
    # time.monotonic() at startup; the uptime is measured from here.
    started_at: float = field(default_factory=time.monotonic)


def uptime_seconds(stats: BrokerStats, now: float) -> int:
    """Return whole seconds since `stats.started_at`, never negative."""
    return max(0, int(now - stats.started_at))


def sys_topics(stats: BrokerStats, pool: ClientPool[Any], rss_bytes: int, version: str, now: float) -> dict[str, str]:
    """Return each `$SYS/broker/...` topic with its payload text.

    `now` is a time.monotonic() reading, `rss_bytes` the process's resident set size.
    """
    values = {
        "clients/connected": stats.clients_connected,
        "clients/disconnected": max(0, stats.clients_total - stats.clients_connected),
        "clients/maximum": stats.clients_maximum,
        "clients/total": stats.clients_total,
        "messages/received": stats.messages_received,
        "messages/sent": stats.messages_sent,
        "publish/messages/dropped": stats.publish_dropped,
        "bytes/received": stats.bytes_received,
        "bytes/sent": stats.bytes_sent,
        "subscriptions/count": stats.subscriptions,
        "retained messages/count": stats.retained,
        "pool/capacity": pool.capacity,
        "pool/preheated": pool.preheated,
        "pool/expansions": pool.expansions,
        "pool/live": pool.live,
        "pool/direct": pool.direct,
        "process/rss_bytes": rss_bytes,
    }
    topics = {SYS_PREFIX + name: str(value) for name, value in values.items()}
    # Same forms as mosquitto 2.0.11, which publishes "12 seconds" and "mosquitto version 2.0.11".
    topics[SYS_PREFIX + "uptime"] = f"{uptime_seconds(stats, now)} seconds"
    topics[SYS_PREFIX + "version"] = f"poolmigrate broker version {version}"
    return topics


def metric_values(stats: BrokerStats, pool: ClientPool[Any], rss_bytes: int, now: float) -> dict[str, float]:
    """Return the counters as Prometheus samples; names ending in `_total` are counters."""
    return {
        "clients_connected": stats.clients_connected,
        "clients_maximum": stats.clients_maximum,
        "clients": stats.clients_total,
        "messages_received_total": stats.messages_received,
        "messages_sent_total": stats.messages_sent,
        "publish_dropped_total": stats.publish_dropped,
        "publish_denied_total": stats.publish_denied,
        "bytes_received_total": stats.bytes_received,
        "bytes_sent_total": stats.bytes_sent,
        "subscriptions": stats.subscriptions,
        "retained_messages": stats.retained,
        "connections_rejected_total": stats.connections_rejected,
        "malformed_packets_total": stats.malformed_packets,
        "qos0_dropped_slow_total": stats.qos0_dropped_slow,
        "pool_capacity": pool.capacity,
        "pool_preheated": pool.preheated,
        "pool_expansions_total": pool.expansions,
        "pool_live": pool.live,
        "pool_direct": pool.direct,
        "pool_free": pool.free,
        "process_rss_bytes": rss_bytes,
        "uptime_seconds": uptime_seconds(stats, now),
    }
