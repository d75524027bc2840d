"""The Prometheus endpoint, scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.config import PoolSettings
from broker.metrics import MetricsServer, start_metrics_server
from broker.pool import ClientPool
from broker.stats import BrokerStats, metric_values

SCRAPE_TIMEOUT = 10.0


def scrape(server: MetricsServer) -> dict[str, tuple[str, float]]:
    """Return each sample name with its metric type and value."""
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name] = (family.type, sample.value)
    return samples


@pytest.fixture
def values() -> dict[str, float]:
    return {"clients_connected": 3, "messages_received_total": 10, "pool_capacity": 1024}


@pytest.fixture
def server(values: dict[str, float]) -> Iterator[MetricsServer]:
    running = start_metrics_server(0, lambda: values)
    yield running
    running.close()


def test_scrape_exposes_prefixed_values(server: MetricsServer) -> None:
    samples = scrape(server)
    assert samples["poolmigrate_broker_clients_connected"] == ("gauge", 3.0)
    assert samples["poolmigrate_broker_pool_capacity"] == ("gauge", 1024.0)
    assert samples["poolmigrate_broker_messages_received_total"] == ("counter", 10.0)


def test_scrape_reads_values_each_time(server: MetricsServer, values: dict[str, float]) -> None:
    assert scrape(server)["poolmigrate_broker_clients_connected"][1] == 3.0
    values["clients_connected"] = 7
    values["pool_live"] = 2
    samples = scrape(server)
    assert samples["poolmigrate_broker_clients_connected"][1] == 7.0
    assert samples["poolmigrate_broker_pool_live"][1] == 2.0


def test_scrape_uses_own_registry(server: MetricsServer) -> None:
    samples = scrape(server)
    # The default registry would add process_* and python_gc_* samples.
    assert all(name.startswith("poolmigrate_broker_") for name in samples)
    assert len(samples) == 3


def test_scrape_serves_broker_stats() -> None:
    pool: ClientPool[object] = ClientPool(PoolSettings(initial_pool_size=2, max_pool_size=4, max_connections=5), object)
    pool.preheat()
    stats = BrokerStats(started_at=0.0)
    stats.bytes_sent = 99
    with start_metrics_server(0, lambda: metric_values(stats, pool, 1234, now=5.0)) as running:
        samples = scrape(running)
    assert samples["poolmigrate_broker_bytes_sent_total"] == ("counter", 99.0)
    assert samples["poolmigrate_broker_pool_free"] == ("gauge", 2.0)
    assert samples["poolmigrate_broker_process_rss_bytes"] == ("gauge", 1234.0)
    assert samples["poolmigrate_broker_uptime_seconds"] == ("gauge", 5.0)


def test_invalid_name_skipped_with_one_warning(
    server: MetricsServer, values: dict[str, float], caplog: pytest.LogCaptureFixture
) -> None:
    values["bad name"] = 1
    with caplog.at_level(logging.WARNING, logger="broker.metrics"):
        first = scrape(server)
        second = scrape(server)
    assert "poolmigrate_broker_clients_connected" in first
    assert not any("bad" in name for name in first)
    assert not any("bad" in name for name in second)
    warnings = [record for record in caplog.records if "bad name" in record.getMessage()]
    assert len(warnings) == 1


def test_failing_collect_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, float]:
        raise RuntimeError("counter source is gone")

    with caplog.at_level(logging.ERROR, logger="broker.metrics"):
        with start_metrics_server(0, broken) as running:
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=SCRAPE_TIMEOUT)
            caught.value.close()
    assert caught.value.code == 500
    assert any("Collecting broker metrics failed" in record.getMessage() for record in caplog.records)


def test_server_listens_on_loopback_only(server: MetricsServer) -> None:
    address = server._server.socket.getsockname()
    assert address[0] == "127.0.0.1"


def test_close_frees_port(values: dict[str, float]) -> None:
    running = start_metrics_server(0, lambda: values)
    port = running.port
    running.close()
    running.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT)
    again = start_metrics_server(port, lambda: values)
    try:
        assert again.port == port
        assert scrape(again)["poolmigrate_broker_clients_connected"][1] == 3.0
    finally:
        again.close()


def test_busy_port_raises_clear_error(values: dict[str, float]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(OSError) as caught:
            start_metrics_server(port, lambda: values)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "metrics_port" in message
