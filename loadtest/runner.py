"""Run one load test: broker, locust master and workers, staged ramp, hold, disconnect, teardown.

Importing this module imports locust, which patches the standard library for gevent, so
the CLI imports it only inside the `run` command.
"""

from __future__ import annotations

import locust  # isort: skip

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent
import psutil
from gevent.event import Event
from locust import argument_parser
from locust.env import Environment
from locust.runners import MasterRunner

from broker.config import PoolSettings
from loadtest import children
from loadtest.brokerproc import BrokerReady, BrokerStartError, BundledBroker, write_config
from loadtest.checkpoints import MB, Checkpoint, PoolEvent, checkpoint_counts
from loadtest.monitor import BrokerUnreachable, SysMonitor
from loadtest.mqtt_user import STATUS_MESSAGE, MqttUser, UserSettings
from loadtest.options import InvalidOptions, RunOptions, check_options
from loadtest.sampler import RssSampler, Sample

logger = logging.getLogger(__name__)

# Connections the load tester itself holds on the broker: the $SYS monitor.
MONITOR_CONNECTIONS = 1

# Seconds local worker processes may take to start and register with the master.
WORKER_START_TIMEOUT = 30.0

# Seconds a stage may run beyond twice its ramp time before the run gives up on it.
STAGE_GRACE = 15.0

# Seconds to wait for every user to disconnect, and for workers to exit, at the end.
STOP_TIMEOUT = 15.0

# Seconds to wait for a fresh RSS sample once the connection count settled.
SAMPLE_WAIT = 2.0

# Seconds to wait for the next $SYS publication once the connection count settled. The
# bundled broker publishes every second in the configs the load tester writes.
SYS_WAIT = 2.5

# Seconds between checks of the run's state while waiting.
WAIT_STEP = 0.25


def default_time_limit(count: int, rate: float, hold: float) -> float:
    """Return the hard time limit of a run: three times the ramp, the hold and a minute for setup."""
    return 60.0 + 3 * count / rate + hold


class RunAborted(Exception):
    """The run could not complete.

    `reason` is a clause that completes "The run could not complete because ...", and
    `advice` is the next step in full sentences. The message joins both.
    """

    def __init__(self, reason: str, advice: str = "") -> None:
        self.reason = reason
        self.advice = advice
        message = f"The run could not complete because {reason}."
        super().__init__(f"{message} {advice}" if advice else message)


class ProgressView(Protocol):
    """Receiver of a run's progress, which the CLI draws as a progress bar."""

    def stage(self, target: int, total: int) -> None: ...

    def update(self, connected: int, failures: int) -> None: ...

    def note(self, text: str) -> None: ...


class SilentProgress:
    def stage(self, target: int, total: int) -> None:
        pass

    def update(self, connected: int, failures: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class RunResult:
    """Measurements of one run, which report.py turns into the table and the files."""

    options: RunOptions
    broker: dict[str, Any] = field(default_factory=dict)
    memory_note: str | None = None
    baseline_rss: int | None = None
    startup_rss: int | None = None
    startup_capacity: int | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    pool_events: list[PoolEvent] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    pool_capacity: int | None = None
    pool_expansions: int | None = None
    sys_clients_connected_max: int | None = None
    max_connected: int = 0
    disconnected_all: bool = False
    published: int = 0
    received: int = 0
    duration: float = 0.0
    aborted: str | None = None

    @property
    def memory_sampled(self) -> bool:
        return bool(self.samples)

    @property
    def startup_growth(self) -> int | None:
        if self.baseline_rss is None or self.startup_rss is None or not self.broker.get("bundled"):
            return None
        return self.startup_rss - self.baseline_rss


class LoadRun:
    """One `loadtest run`, from preflight checks to teardown."""

    def __init__(self, options: RunOptions, progress: ProgressView | None = None) -> None:
        self.options = options
        self.progress = progress or SilentProgress()
        self.result = RunResult(options)
        self.started = time.monotonic()
        limit = options.time_limit or default_time_limit(options.count, options.rate, options.hold)
        self.time_limit = limit
        self.deadline = self.started + limit

        self.broker: BundledBroker | None = None
        self.workdir: Path | None = None
        self.monitor: SysMonitor | None = None
        self.sampler: RssSampler | None = None
        self.broker_process: psutil.Process | None = None
        self.environment: Environment | None = None
        self.master: MasterRunner | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.status: dict[str, dict[str, Any]] = {}
        self.changed = Event()
        self.interrupted = False

    # Aggregates over the workers' latest status messages.

    @property
    def connected(self) -> int:
        return sum(status["connected"] for status in self.status.values())

    @property
    def connecting(self) -> int:
        return sum(status["connecting"] for status in self.status.values())

    def failures(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for status in self.status.values():
            total.update(status["failures"])
        return total

    def execute(self) -> RunResult:
        """Run every step and return the result; a step that cannot complete sets `result.aborted`."""
        handlers = [gevent.signal_handler(signum, self._interrupt) for signum in (signal.SIGINT, signal.SIGTERM)]
        try:
            try:
                check_options(self.options)
            except InvalidOptions as error:
                raise RunAborted("an option is invalid", str(error)) from None
            self.options.out.mkdir(parents=True, exist_ok=True)
            self._start_broker()
            self._connect_monitor()
            self._start_sampler()
            self._start_master_and_workers()
            self._ramp()
            self._hold()
            self._disconnect_everyone()
        except RunAborted as error:
            self.result.aborted = str(error)
            logger.error("The run was aborted: %s", error)
        finally:
            self._teardown()
            for handler in handlers:
                handler.cancel()
        return self.result

    def _interrupt(self) -> None:
        self.interrupted = True
        self.changed.set()

    def _check_running(self) -> None:
        """Raise RunAborted when the run was interrupted, ran out of time or lost a process."""
        if self.interrupted:
            raise RunAborted("it was interrupted by Ctrl-C or SIGTERM", "The broker and workers were stopped.")
        if time.monotonic() > self.deadline:
            raise RunAborted(
                f"it hit its time limit of {self.time_limit:.0f} s",
                "Lower --count, raise --rate, or give more time with --time-limit.",
            )
        for number, worker in enumerate(self.workers, start=1):
            if worker.poll() is not None:
                log = self.options.out / f"worker-{number}.log"
                raise RunAborted(
                    f"worker {number} (PID {worker.pid}) exited with code {worker.returncode}",
                    f"Its output, from {log}:\n{children.log_tail(log)}",
                )
        if self.broker is not None and self.broker.process is not None and self.broker.process.poll() is not None:
            raise RunAborted(
                f"the bundled broker exited with code {self.broker.process.returncode} during the run",
                f"Its output:\n{self.broker.output()}",
            )
        if self.sampler is not None and self.sampler.lost is not None:
            raise RunAborted(f"memory sampling stopped: {self.sampler.lost}")

    def _wait(self, seconds: float) -> None:
        """Wait up to `seconds` for news from the workers, the monitor or a signal."""
        self.changed.wait(seconds)
        self.changed.clear()

    # Step 1: the broker.

    def _start_broker(self) -> None:
        options = self.options
        if not options.bundled:
            self.result.broker = {"bundled": False, "host": options.host, "port": options.port, "pid": options.broker_pid}
            if options.broker_pid is not None:
                try:
                    self.broker_process = psutil.Process(options.broker_pid)
                except psutil.NoSuchProcess:
                    raise RunAborted(
                        f"--broker-pid {options.broker_pid} names no running process",
                        f"Give the PID of the broker at {options.host}:{options.port}.",
                    ) from None
            return

        self.workdir = Path(tempfile.mkdtemp(prefix="loadtest-broker-"))
        pool_values = {**options.scenario.values, **options.pool_overrides}
        # The $SYS monitor is a client too, so the broker admits one more than the preset.
        # Without it, a run of exactly max_connections clients could never fill up.
        pool_values["max_connections"] = pool_values.get("max_connections", PoolSettings().max_connections) + MONITOR_CONNECTIONS
        config = write_config(self.workdir, pool_values)
        self.broker = BundledBroker(config, self.workdir)
        self.progress.note(f"Starting the bundled broker with the {options.scenario.name} preset.")
        try:
            ready = self.broker.start()
        except BrokerStartError as error:
            raise RunAborted(error.reason, f"Its output:\n{error.output}") from None
        self.broker_process = psutil.Process(ready.pid)
        self._record_ready(ready, pool_values)

    def _record_ready(self, ready: BrokerReady, pool_values: dict[str, int]) -> None:
        self.result.broker = {"bundled": True, **ready.to_json(), "config": pool_values}
        self.result.baseline_rss = ready.baseline_rss
        self.result.startup_rss = ready.startup_rss
        self.result.startup_capacity = ready.pool_capacity

    @property
    def broker_address(self) -> tuple[str, int]:
        if self.broker is not None and self.broker.ready is not None:
            return self.broker.ready.host, self.broker.ready.port
        return self.options.host or "127.0.0.1", self.options.port

    # Step 2: the $SYS monitor, which also proves the broker is reachable.

    def _connect_monitor(self) -> None:
        host, port = self.broker_address
        self.monitor = SysMonitor(host, port, on_capacity=self._on_capacity)
        try:
            self.monitor.connect()
        except BrokerUnreachable as error:
            self.monitor = None
            if self.options.bundled:
                advice = f"The bundled broker's log is copied to {self.options.out / 'broker.log'}."
            else:
                advice = "Check --host and --port, or omit --host to start the bundled broker."
            raise RunAborted(error.reason, advice) from None

    def _on_capacity(self, capacity: int) -> None:
        if capacity == self.result.startup_capacity and not self.result.pool_events:
            return
        # NOTE: $SYS arrives up to sys_interval after the expansion, so this RSS also counts
        # the connections accepted in between, which overstates the growth slightly.
        rss = self._read_rss()
        growth = rss - self.result.baseline_rss if rss is not None and self.result.baseline_rss is not None else None
        event = PoolEvent(capacity, self.connected, rss, growth, time.monotonic() - self.started)
        self.result.pool_events.append(event)
        logger.info("The broker's pool capacity is now %d at %d connections.", capacity, event.connections)

    def _read_rss(self) -> int | None:
        if self.broker_process is None:
            return None
        try:
            return self.broker_process.memory_info().rss
        except psutil.Error:
            return None

    # Step 3: memory sampling, when the broker's PID is known.

    def _start_sampler(self) -> None:
        if self.broker_process is None:
            self.result.memory_note = (
                "Memory was not sampled because the broker's PID is unknown; pass --broker-pid to measure it."
            )
            return
        if not self.options.bundled:
            rss = self._read_rss()
            self.result.baseline_rss = rss
            self.result.startup_rss = rss
            self.result.memory_note = (
                "Growth is measured from the broker's RSS when the run started, because the load tester "
                "did not start this broker; the startup target is not measured."
            )
        self.sampler = RssSampler(self.broker_process.pid, self._load)
        self.sampler.start(self.started)

    def _load(self) -> tuple[int, int | None]:
        capacity = self.monitor.pool_capacity if self.monitor is not None else None
        return self.connected, capacity

    # Step 4: locust's master in this process, workers as child processes.

    def _start_master_and_workers(self) -> None:
        options = self.options
        host, port = self.broker_address
        settings = UserSettings(
            host=host,
            port=port,
            qos=options.qos,
            payload_size=options.payload_size,
            publish_interval=options.publish_interval,
            source_addresses=options.source_addresses,
            connect_timeout=options.connect_timeout,
        )
        parser = argument_parser.get_empty_argument_parser()
        argument_parser.setup_parser_arguments(parser)
        parsed = parser.parse(args=[])
        vars(parsed).update(settings.to_options())

        self.environment = Environment(user_classes=[MqttUser], events=locust.events, parsed_options=parsed)
        self.master = self.environment.create_master_runner(options.master_bind_host, options.master_bind_port)
        self.master.register_message(STATUS_MESSAGE, self._on_status)
        master_port = self.master.server.port
        logger.info("The locust master listens for workers on %s:%d.", options.master_bind_host, master_port)

        worker_host = "127.0.0.1" if options.master_bind_host in ("*", "0.0.0.0") else options.master_bind_host
        for number in range(1, options.workers + 1):
            command = [sys.executable, "-m", "loadtest.worker", "--master-host", worker_host, "--master-port", str(master_port)]
            self.workers.append(children.spawn(command, options.out / f"worker-{number}.log"))

        expected = options.workers + options.remote_workers
        if options.remote_workers:
            self.progress.note(
                f"Waiting for {options.remote_workers} remote worker(s): run "
                f"`loadtest worker --master-host THIS_HOST --master-port {master_port}` on each."
            )
        wait_seconds = WORKER_START_TIMEOUT if not options.remote_workers else self.time_limit
        wait_until = time.monotonic() + wait_seconds
        while self.master.worker_count < expected:
            self._check_running()
            if time.monotonic() > wait_until:
                raise RunAborted(
                    f"only {self.master.worker_count} of {expected} workers registered with the master within {wait_seconds:g} s",
                    f"See the worker logs in {options.out}.",
                )
            gevent.sleep(0.05)

    def _on_status(self, environment: Environment, msg: Any, **kwargs: Any) -> None:
        data = msg.data
        self.status[data["worker"]] = data
        self.result.latencies_ms.extend(data["latencies_ms"])
        self.result.max_connected = max(self.result.max_connected, self.connected)
        self.changed.set()

    # Step 5: ramp to each checkpoint in turn, and measure once the count has settled.

    def _ramp(self) -> None:
        options = self.options
        counts = checkpoint_counts(options.count, options.scenario.targets)
        self.progress.note(
            f"Ramping to {options.count} connections at {options.rate:g}/s with checkpoints at "
            + ", ".join(f"{c:,}" for c in counts)
            + "."
        )
        previous = 0
        spawner: gevent.Greenlet | None = None
        for target in counts:
            if spawner is not None:
                spawner.join(timeout=STOP_TIMEOUT)
            self.progress.stage(target, options.count)
            spawner = gevent.spawn(self.master.start, target, options.rate)
            self._settle(target, previous)
            previous = target

    def _settle(self, target: int, previous: int) -> None:
        """Wait until `target` connections are up, then record a checkpoint with a fresh RSS sample."""
        budget = 2 * (target - previous) / self.options.rate + STAGE_GRACE + self.options.connect_timeout
        stage_deadline = time.monotonic() + budget
        while True:
            self._check_running()
            connected = self.connected
            self.progress.update(connected, sum(self.failures().values()))
            if connected >= target and self.connecting == 0:
                break
            if time.monotonic() > stage_deadline:
                self._record_checkpoint(target, time.monotonic())
                reasons = "; ".join(f"{reason}: {n}" for reason, n in self.failures().most_common(3)) or "none reported"
                raise RunAborted(
                    f"only {connected} of {target} connections were established within {budget:.0f} s "
                    f"(failures: {reasons})",
                    f"The failures by reason are in the report, and each worker's log is in {self.options.out}.",
                )
            self._wait(WAIT_STEP)
        self._record_checkpoint(target, time.monotonic())

    def _record_checkpoint(self, target: int, moment: float) -> None:
        sample = self.sampler.wait_after(moment, SAMPLE_WAIT) if self.sampler is not None else None
        if self.monitor is not None:
            self.monitor.wait_capacity_after(moment, SYS_WAIT)
        rss = sample.rss if sample is not None else None
        growth = rss - self.result.baseline_rss if rss is not None and self.result.baseline_rss is not None else None
        capacity = self.monitor.pool_capacity if self.monitor is not None else None
        broker_connected = self.monitor.clients_connected if self.monitor is not None else None
        checkpoint = Checkpoint(target, self.connected, rss, growth, capacity, time.monotonic() - self.started, broker_connected)
        self.result.checkpoints.append(checkpoint)
        logger.info("Checkpoint at %d connections: RSS %s bytes, pool capacity %s.", checkpoint.connections, rss, capacity)
        self.progress.note(
            f"Checkpoint {target:,}: {checkpoint.connections:,} connections"
            + (f", RSS {rss / MB:.1f} MB" if rss is not None else "")
            + "."
        )

    # Step 6: hold every connection open.

    def _hold(self) -> None:
        if self.options.hold > 0:
            self.progress.note(f"Holding {self.connected:,} connections for {self.options.hold:g} s.")
        hold_until = time.monotonic() + self.options.hold
        while time.monotonic() < hold_until:
            self._check_running()
            self.progress.update(self.connected, sum(self.failures().values()))
            self._wait(min(WAIT_STEP, max(hold_until - time.monotonic(), 0)))

    # Step 7: disconnect every user and let the workers go.

    def _disconnect_everyone(self) -> None:
        self.progress.note("Disconnecting every client.")
        with gevent.Timeout(STOP_TIMEOUT, False):
            self.master.stop()
        stop_until = time.monotonic() + STOP_TIMEOUT
        while self.connected > 0 and time.monotonic() < stop_until:
            self._wait(WAIT_STEP)
        self.result.disconnected_all = self.connected == 0

    def _teardown(self) -> None:
        """Stop everything this run started, by PID, whatever state the run is in."""
        self._collect_monitor_values()
        if self.master is not None:
            with gevent.Timeout(STOP_TIMEOUT, False):
                self.master.quit()
        for worker in self.workers:
            try:
                worker.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("Worker PID %d did not exit after quit; stopping it.", worker.pid)
            children.stop(worker)
        if self.monitor is not None:
            self.monitor.close()
        if self.sampler is not None:
            self.sampler.stop()
            self.result.samples = list(self.sampler.samples)
        if self.broker is not None:
            code = self.broker.stop()
            self.result.broker["exit_code"] = code
            if self.broker.log_path.exists():
                shutil.copyfile(self.broker.log_path, self.options.out / "broker.log")
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

        self.result.failures = self.failures()
        self.result.published = sum(status["published"] for status in self.status.values())
        self.result.received = sum(status["received"] for status in self.status.values())
        self.result.duration = time.monotonic() - self.started

    def _collect_monitor_values(self) -> None:
        if self.monitor is None:
            return
        self.result.pool_capacity = self.monitor.pool_capacity
        self.result.pool_expansions = self.monitor.pool_expansions
        self.result.sys_clients_connected_max = self.monitor.clients_connected_max


def run_load_test(options: RunOptions, progress: ProgressView | None = None) -> RunResult:
    """Run a load test with `options` and return what it measured."""
    return LoadRun(options, progress).execute()
