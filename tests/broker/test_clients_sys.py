"""$SYS topics, their separation from ordinary wildcards, and the Prometheus endpoint."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.timeout(30)

SYS_INTERVAL = 0.2
# Seconds to wait for a $SYS value: several publication rounds at SYS_INTERVAL.
SYS_WAIT = 5.0

# Topics that mosquitto publishes too, under the same names.
COMMON_SYS_TOPICS = {
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/clients/total",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/uptime",
    "$SYS/broker/version",
}
POOL_SYS_TOPICS = {
    "$SYS/broker/pool/capacity",
    "$SYS/broker/pool/preheated",
    "$SYS/broker/pool/expansions",
    "$SYS/broker/pool/live",
    "$SYS/broker/pool/direct",
    "$SYS/broker/process/rss_bytes",
}


@pytest.fixture(scope="module")
def metrics_port(find_free_port):
    return find_free_port()


@pytest.fixture(scope="module")
def broker_settings(metrics_port):
    return {"broker": {"sys_interval": SYS_INTERVAL, "metrics_port": metrics_port}}


def wait_for_topics(client, expected_topics: set[str], timeout: float = SYS_WAIT) -> dict[str, str]:
    """Read messages until every topic in `expected_topics` has arrived; return the latest payloads."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while not expected_topics <= set(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"Missing $SYS topics after {timeout} s: {sorted(expected_topics - set(seen))}")
        message = client.next_message(remaining)
        seen[message.topic] = message.payload.decode()
    return seen


def wait_for_value(client, topic: str, expected: str, timeout: float = SYS_WAIT) -> None:
    """Read messages until `topic` carries `expected`; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{topic} did not become {expected!r} within {timeout} s; last value {last!r}.")
        message = client.next_message(remaining)
        if message.topic == topic:
            last = message.payload.decode()
            if last == expected:
                return


def test_sys_wildcard_receives_broker_topics(mqtt_broker, paho):
    observer = paho.connect(mqtt_broker)
    observer.subscribe("$SYS/#", qos=0)

    values = wait_for_topics(observer, COMMON_SYS_TOPICS)

    assert re.fullmatch(r"\d+ seconds", values["$SYS/broker/uptime"])
    assert values["$SYS/broker/version"]
    assert values["$SYS/broker/clients/connected"].isdigit()


@pytest.mark.bundled_only
def test_pool_sys_topics_describe_pool(mqtt_broker, paho):
    observer = paho.connect(mqtt_broker)
    observer.subscribe("$SYS/broker/#", qos=0)

    values = wait_for_topics(observer, POOL_SYS_TOPICS)

    assert values["$SYS/broker/pool/capacity"] == "16"
    assert values["$SYS/broker/pool/preheated"] == "16"
    assert values["$SYS/broker/pool/expansions"] == "0"
    assert values["$SYS/broker/pool/direct"] == "0"
    assert int(values["$SYS/broker/pool/live"]) >= 1
    assert int(values["$SYS/broker/process/rss_bytes"]) > 0


def test_leading_wildcards_do_not_match_sys_topics(mqtt_broker, paho, topic):
    sys_observer = paho.connect(mqtt_broker)
    sys_observer.subscribe("$SYS/#", qos=0)
    sys_observer.next_message(SYS_WAIT)
    wildcard = paho.connect(mqtt_broker)
    wildcard.subscribe([("#", 0), ("+/broker/#", 0), ("+/broker/uptime", 0)])

    # A $SYS message sent live (retain clear) proves a publication round after the subscription.
    while sys_observer.next_message(SYS_WAIT).retain:
        pass
    sentinel = f"{topic}/sentinel"
    wildcard.publish(sentinel, b"end", qos=1)
    received = wildcard.messages_until(sentinel)

    assert [m.topic for m in received if m.topic.startswith("$")] == []
    wildcard.unsubscribe("#")


def test_clients_connected_follows_connections(mqtt_broker, paho):
    observer = paho.connect(mqtt_broker)
    observer.subscribe("$SYS/broker/clients/connected", qos=0)
    extra = [paho.connect(mqtt_broker) for _ in range(2)]

    wait_for_value(observer, "$SYS/broker/clients/connected", "3")
    extra[0].disconnect()

    wait_for_value(observer, "$SYS/broker/clients/connected", "2")


def test_mosquitto_sub_reads_uptime(mqtt_broker, mosquitto):
    result = mosquitto.sub_run(mqtt_broker, "-t", "$SYS/broker/uptime", "-C", "1", "-W", "5")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ seconds\n", result.stdout)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def metric_value(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


@pytest.mark.bundled_only
def test_prometheus_endpoint_reports_connected_clients(mqtt_broker, paho, metrics_port):
    clients = [paho.connect(mqtt_broker) for _ in range(3)]

    # The decrement for a client that left earlier may still be in flight, so poll briefly.
    deadline = time.monotonic() + SYS_WAIT
    while True:
        text = scrape(metrics_port)
        connected = metric_value(text, "poolmigrate_broker_clients_connected")
        if connected == len(clients) or time.monotonic() > deadline:
            break
        threading.Event().wait(0.05)

    assert "poolmigrate_broker_" in text
    assert connected == len(clients), f"clients_connected is {connected}; scrape:\n{text}"
    assert metric_value(text, "poolmigrate_broker_pool_capacity") == 16
