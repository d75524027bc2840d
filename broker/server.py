"""The asyncio MQTT 3.1.1 server: listen, run the periodic work and shut down on a signal.

Each socket gets one `Connection` (`broker.connection`), and the `Broker` (`broker.core`)
contains the shared state. This module and `broker.connection` are the only ones that
touch asyncio transports. The names of both and of `broker.event_loop` are re-exported
here, so that `from broker.server import ...` keeps working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path

from broker import __version__
from broker.config import BrokerConfig
from broker.connection import PINGRESP_BYTES, STALLED_SUBSCRIBER_SECONDS, UNSUBACK_FIRST_BYTE, Connection
from broker.core import MAX_SWEEP_INTERVAL_SECONDS, Broker, Slot
from broker.event_loop import NO_UVLOOP_VARIABLE, event_loop_name, new_event_loop
from broker.metrics import start_metrics_server
from broker.rss import current_rss, format_megabytes, process_age

__all__ = [
    "MAX_SWEEP_INTERVAL_SECONDS",
    "NO_UVLOOP_VARIABLE",
    "PINGRESP_BYTES",
    "SHUTDOWN_FLUSH_SECONDS",
    "STALLED_SUBSCRIBER_SECONDS",
    "UNSUBACK_FIRST_BYTE",
    "Broker",
    "Connection",
    "Slot",
    "StartupError",
    "event_loop_name",
    "new_event_loop",
    "run",
    "serve",
]

logger = logging.getLogger("broker.server")

# Seconds that shutdown waits for closing connections to flush before aborting them.
SHUTDOWN_FLUSH_SECONDS = 1.0


class StartupError(Exception):
    """The broker could not start listening; the message names the address and the fix."""


def _write_ready_file(path: Path, info: dict) -> None:
    """Write `info` as JSON atomically, so a reader never sees a partial file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(info), encoding="utf-8")
    os.replace(temporary, path)


async def serve(
    config: BrokerConfig,
    *,
    ready_file: Path | None = None,
    stop: asyncio.Event | None = None,
    baseline_rss: int | None = None,
) -> None:
    """Run the broker until `stop` is set, then close every connection."""
    loop = asyncio.get_running_loop()
    if baseline_rss is None:
        baseline_rss = current_rss()
    stop = stop or asyncio.Event()

    # Step 1: build the broker and preheat the pool.
    broker = Broker(config)
    pool = broker.pool
    pool.preheat()
    if config.pool.legacy:
        logger.warning(
            'max_clients_pool is deprecated: this broker preheated %d slots and will never grow the pool. '
            'Run "poolmigrate convert %s" to switch to the dynamic pool.',
            pool.preheated, config.source or "CONFIG",
        )

    # Step 2: listen, then report the address and the memory it took to get here.
    try:
        server = await loop.create_server(
            lambda: Connection(broker), config.host, config.port, backlog=config.pool.io_entries, reuse_address=True,
        )
    except OSError as error:
        raise StartupError(
            f"Could not listen on {config.host}:{config.port}: {error.strerror or error}. "
            "Choose another port with --port or stop the process that uses it."
        ) from error
    host, port = server.sockets[0].getsockname()[:2]
    startup_rss = current_rss()
    startup_seconds = process_age()
    settings = config.pool
    logger.info(
        "Listening on %s:%d with a pool of %d preheated slots (max pool %d, max connections %d); RSS %s (baseline %s); "
        "event loop %s.",
        host, port, pool.preheated, pool.settings.max_pool_size if not settings.legacy else settings.max_clients_pool,
        settings.max_connections, format_megabytes(startup_rss), format_megabytes(baseline_rss), event_loop_name(loop),
    )
    metrics_server = None
    if config.metrics_port is not None:
        try:
            metrics_server = start_metrics_server(config.metrics_port, broker.metrics)
        except OSError as error:
            server.close()
            # start_metrics_server's message already names the address and the fix.
            raise StartupError(error.strerror or str(error)) from error
        logger.info("Serving Prometheus metrics on http://127.0.0.1:%d/metrics.", metrics_server.port)
    if ready_file is not None:
        _write_ready_file(Path(ready_file), {
            "host": host,
            "port": port,
            "pid": os.getpid(),
            "version": __version__,
            "baseline_rss": baseline_rss,
            "startup_rss": startup_rss,
            "startup_seconds": startup_seconds,
            "pool_capacity": pool.capacity,
            "max_pool_size": settings.max_clients_pool if settings.legacy else settings.max_pool_size,
            "max_connections": settings.max_connections,
            "legacy": settings.legacy,
            "metrics_port": metrics_server.port if metrics_server is not None else None,
        })

    # Step 3: periodic work: the keepalive and CONNECT-timeout sweep and the $SYS topics.
    tasks = [asyncio.ensure_future(_repeat(broker.sweep, broker.sweep_interval()))]
    if config.sys_interval > 0:
        tasks.append(asyncio.ensure_future(_repeat(broker.publish_sys_topics, config.sys_interval)))

    # Step 4: wait for the stop signal and shut down.
    try:
        await stop.wait()
    finally:
        open_connections = len(broker.connections)
        logger.info("Stopping: closing the listener and %d %s.", open_connections,
                    "connection" if open_connections == 1 else "connections")
        server.close()
        for task in tasks:
            task.cancel()
        for connection in list(broker.connections):
            connection.close()
        await _wait_for_connections(broker)
        await server.wait_closed()
        if metrics_server is not None:
            metrics_server.close()
        logger.info("Stopped.")


async def _repeat(function, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            function()
        except Exception:
            logger.exception("Periodic task %r failed; it runs again in %.1f seconds.", function, interval)


async def _wait_for_connections(broker: Broker) -> None:
    """Give closing connections SHUTDOWN_FLUSH_SECONDS to flush, then abort the rest."""
    deadline = time.monotonic() + SHUTDOWN_FLUSH_SECONDS
    while broker.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    for connection in list(broker.connections):
        connection.transport.abort()
    await asyncio.sleep(0)


def run(
    config: BrokerConfig,
    ready_file: Path | None = None,
    baseline_rss: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> int:
    """Run the broker on `loop` (a new one from new_event_loop by default) until SIGINT or SIGTERM.

    Return the exit code. The loop is closed afterwards.
    """
    if loop is None:
        loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(serve(config, ready_file=ready_file, stop=stop, baseline_rss=baseline_rss))
    finally:
        loop.close()
    return 0
