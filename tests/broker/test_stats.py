"""Broker counters, the $SYS topics built from them and their Prometheus values."""

from __future__ import annotations

import dataclasses

import pytest

from broker.config import PoolSettings
from broker.pool import ClientPool
from broker.stats import BrokerStats, metric_values, sys_topics
from broker.topics import validate_topic_name

CONTRACT_TOPICS = {
    "clients/connected",
    "clients/maximum",
    "clients/total",
    "messages/received",
    "messages/sent",
    "publish/messages/dropped",
    "subscriptions/count",
    "retained messages/count",
    "uptime",
    "version",
    "pool/capacity",
    "pool/preheated",
    "pool/expansions",
    "pool/live",
    "pool/direct",
    "process/rss_bytes",
}


def busy_pool() -> ClientPool[object]:
    """Return a pool of 4 grown to its ceiling of 9, with 11 live slots of which 2 are direct."""
    pool: ClientPool[object] = ClientPool(
        PoolSettings(initial_pool_size=4, max_pool_size=9, max_connections=12), object
    )
    pool.preheat()
    for _ in range(11):
        pool.acquire()
    return pool


def filled_stats() -> BrokerStats:
    stats = BrokerStats(started_at=1000.0)
    stats.clients_connected = 11
    stats.clients_maximum = 12
    stats.clients_total = 15
    stats.messages_received = 300
    stats.messages_sent = 420
    stats.publish_dropped = 7
    stats.publish_denied = 2
    stats.bytes_received = 12_345
    stats.bytes_sent = 23_456
    stats.subscriptions = 30
    stats.retained = 4
    stats.connections_rejected = 1
    stats.malformed_packets = 3
    stats.qos0_dropped_slow = 5
    return stats


def test_stats_start_at_zero() -> None:
    stats = BrokerStats()
    for item in dataclasses.fields(stats):
        if item.name != "started_at":
            assert getattr(stats, item.name) == 0, item.name
    assert stats.started_at > 0


def test_stats_use_slots() -> None:
    stats = BrokerStats()
    with pytest.raises(AttributeError):
        stats.clients_conected = 1  # type: ignore[attr-defined]


def test_sys_topics_include_contract_names() -> None:
    topics = sys_topics(filled_stats(), busy_pool(), 21_400_000, "0.1.0", now=1123.9)
    names = {topic.removeprefix("$SYS/broker/") for topic in topics}
    assert CONTRACT_TOPICS <= names
    for topic in topics:
        assert topic.startswith("$SYS/broker/")
        validate_topic_name(topic)


def test_sys_topics_payloads() -> None:
    topics = sys_topics(filled_stats(), busy_pool(), 21_400_000, "0.1.0", now=1123.9)
    expected = {
        "clients/connected": "11",
        "clients/disconnected": "4",
        "clients/maximum": "12",
        "clients/total": "15",
        "messages/received": "300",
        "messages/sent": "420",
        "publish/messages/dropped": "7",
        "bytes/received": "12345",
        "bytes/sent": "23456",
        "subscriptions/count": "30",
        "retained messages/count": "4",
        "uptime": "123 seconds",
        "version": "poolmigrate broker version 0.1.0",
        "pool/capacity": "9",
        "pool/preheated": "9",
        "pool/expansions": "2",
        "pool/live": "11",
        "pool/direct": "2",
        "process/rss_bytes": "21400000",
    }
    assert topics == {f"$SYS/broker/{name}": payload for name, payload in expected.items()}


def test_sys_topics_uptime_never_negative() -> None:
    stats = BrokerStats(started_at=50.0)
    topics = sys_topics(stats, busy_pool(), 0, "0.1.0", now=49.0)
    assert topics["$SYS/broker/uptime"] == "0 seconds"


def test_metric_values_mirror_counters() -> None:
    values = metric_values(filled_stats(), busy_pool(), 21_400_000, now=1010.0)
    assert values["clients_connected"] == 11
    assert values["messages_received_total"] == 300
    assert values["publish_denied_total"] == 2
    assert values["connections_rejected_total"] == 1
    assert values["malformed_packets_total"] == 3
    assert values["qos0_dropped_slow_total"] == 5
    assert values["pool_capacity"] == 9
    assert values["pool_expansions_total"] == 2
    assert values["pool_direct"] == 2
    assert values["pool_free"] == 0
    assert values["process_rss_bytes"] == 21_400_000
    assert values["uptime_seconds"] == 10
