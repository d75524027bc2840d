"""Prometheus text endpoint for the broker's counters, served on 127.0.0.1.

The endpoint runs prometheus-client's HTTP server in a daemon thread with its own
CollectorRegistry, so nothing else registered in the process leaks into it. Values are
read from a callable at scrape time. Names ending in `_total` become counters and all
other names become gauges, each prefixed with `poolmigrate_broker_`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

logger = logging.getLogger(__name__)

METRIC_PREFIX = "poolmigrate_broker_"
METRICS_HOST = "127.0.0.1"
# Prometheus' metric name rule, applied to the part after the prefix.
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Seconds close() waits for the server thread to finish its current scrape.
_CLOSE_TIMEOUT = 5.0


class BrokerCollector(Collector):
    """Turns the dict returned by `collect()` into metric families at each scrape."""

    def __init__(self, collect: Callable[[], dict[str, float]]) -> None:
        self._collect = collect
        self._rejected: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        try:
            values = self._collect()
        except Exception:
            # The scrape gets HTTP 500, so Prometheus marks the target down.
            logger.exception("Collecting broker metrics failed; this scrape returns an error.")
            raise

        for name, value in values.items():
            if not _NAME.fullmatch(name):
                if name not in self._rejected:
                    self._rejected.add(name)
                    logger.warning("Skipping metric %r: a Prometheus name may use only letters, digits, '_' and ':'.", name)
                continue
            full_name = METRIC_PREFIX + name
            if name.endswith("_total"):
                family: Metric = CounterMetricFamily(full_name.removesuffix("_total"), f"Broker counter {name}.")
                family.add_metric([], float(value))
            else:
                family = GaugeMetricFamily(full_name, f"Broker value {name}.", value=float(value))
            yield family


class MetricsServer:
    """A running metrics endpoint; `close()` stops it and frees the port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self._closed = False

    @property
    def port(self) -> int:
        """The bound port, which differs from the requested one when that was 0."""
        return self._server.server_port

    def close(self) -> None:
        """Stop serving, close the socket and wait for the server thread; repeat calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(_CLOSE_TIMEOUT)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_metrics_server(port: int, collect: Callable[[], dict[str, float]]) -> MetricsServer:
    """Serve `collect()`'s values as Prometheus text on 127.0.0.1:`port`; 0 picks a free port.

    Raises OSError with the address when the port cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(collect))
    try:
        server, thread = start_http_server(port, addr=METRICS_HOST, registry=registry)
    except OSError as error:
        raise OSError(
            error.errno,
            f"The metrics endpoint could not listen on {METRICS_HOST}:{port}: {error.strerror}. "
            "Choose a free metrics_port or remove it from the config.",
        ) from error
    return MetricsServer(server, thread)
