"""Fixtures for black-box tests of the bundled MQTT broker with real clients.

The broker runs as `python -m broker CONFIG --port 0 --ready-file PATH` in a subprocess.
Tests talk to it with paho-mqtt, Debian's mosquitto_pub/mosquitto_sub and raw sockets.

Setting BROKER_TESTS_REFERENCE=mosquitto runs the same tests against Debian's mosquitto
broker instead, which checks that a test expects what a real MQTT 3.1.1 broker does.
Tests marked `bundled_only` are skipped in that mode: they check features mosquitto lacks
(pool, log lines, config errors) or cases where mosquitto 2.0.11 departs from MQTT 3.1.1.

This file contains only the pytest hooks and fixtures. The code behind them lives beside it:
brokersettings.py and brokerprocess.py start and stop brokers, pahoclient.py wraps paho,
mosquittotools.py runs mosquitto_pub and mosquitto_sub, and rawclient.py speaks MQTT
over raw sockets.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from brokerprocess import REFERENCE_BROKER, REFERENCE_VARIABLE, BrokerLauncher, BrokerProcess, free_port, run_broker_command
from mosquittotools import MosquittoTools
from pahoclient import PahoFactory
from rawclient import RawConnections


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bundled_only: the test checks the bundled broker where mosquitto differs "
        f"(skipped when {REFERENCE_VARIABLE}=mosquitto)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REFERENCE_BROKER is None:
        return
    skip = pytest.mark.skip(reason=f"checks the bundled broker only ({REFERENCE_VARIABLE}={REFERENCE_BROKER})")
    for item in items:
        if "bundled_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def find_free_port():
    """The free_port function, for module fixtures that need a port before the broker starts."""
    return free_port


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield launcher
    launcher.stop_all()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def broker_cli():
    """The run_broker_command function: run `python -m broker ARGS` and return the result."""
    return run_broker_command


@pytest.fixture(scope="module")
def broker_settings() -> dict[str, Any]:
    """Overrides of BASE_SETTINGS for the module's broker; a test module redefines this."""
    return {}


@pytest.fixture(scope="module")
def broker_files(module_launcher: BrokerLauncher) -> Path:
    """Directory of the module's broker config, for files such as a password file."""
    return module_launcher.directory


@pytest.fixture(scope="module")
def mqtt_broker(module_launcher: BrokerLauncher, broker_settings: dict[str, Any]) -> BrokerProcess:
    """One broker shared by the tests of a module."""
    return module_launcher.start(broker_settings)


@pytest.fixture
def paho(request: pytest.FixtureRequest) -> Iterator[PahoFactory]:
    factory = PahoFactory(request.node.name)
    yield factory
    factory.close_all()


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic prefix no other test uses."""
    return "t/" + re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)


@pytest.fixture
def mosquitto() -> Iterator[MosquittoTools]:
    for tool in ("mosquitto_pub", "mosquitto_sub"):
        assert shutil.which(tool), f"{tool} is missing; install the Debian package mosquitto-clients."
    tools = MosquittoTools()
    yield tools
    tools.stop_all()


@pytest.fixture
def raw() -> Iterator[RawConnections]:
    """Raw-socket MQTT connections, each opened with `raw.open(broker)`, closed at teardown."""
    connections = RawConnections()
    yield connections
    connections.close_all()
