"""Startup log and ready file, stopping on SIGINT/SIGTERM with clients connected, config errors."""

from __future__ import annotations

import re
import signal

import pytest

pytestmark = pytest.mark.timeout(40)

CONFIG_ERROR_EXIT_CODE = 2

SMALL_POOL = {"pool": {"initial_pool_size": 4, "max_pool_size": 9, "max_connections": 12}}


@pytest.mark.bundled_only
def test_startup_line_names_address_and_pool(launcher):
    broker = launcher.start(SMALL_POOL)

    line = broker.wait_for_log(rf" INFO .*Listening on 127\.0\.0\.1:{broker.port}\b.*").group(0)

    assert "with a pool of 4 preheated slots" in line
    assert "max pool 9" in line
    assert "max connections 12" in line
    assert re.search(r"RSS [\d.]+ MB", line)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_broker_with_clients_connected(launcher, paho, raw, mosquitto, topic, signal_number):
    broker = launcher.start(SMALL_POOL)
    clients = [paho.connect(broker) for _ in range(3)]
    clients[0].subscribe(topic, qos=1)
    persistent = paho.connect(broker, paho.unique("persistent"), clean_session=False)
    raw_client = raw.open(broker)
    raw_client.connect("raw-at-shutdown")
    clients[1].publish(topic, b"before shutdown", qos=1, retain=True)
    # mosquitto_sub keeps retrying after the broker goes away; the fixture stops it.
    subscriber = mosquitto.sub(broker, "-t", topic, "-q", "1")
    assert subscriber.next_line() == "before shutdown"

    exit_code = broker.stop(signal_number)

    assert exit_code == 0, broker.log_text()
    for client in [*clients, persistent]:
        assert client.disconnected.wait(5), f"{client.client_id} was not disconnected."
    assert raw_client.wait_closed()


@pytest.mark.bundled_only
def test_config_error_exits_2_naming_values(tmp_path, broker_cli):
    config = tmp_path / "broken.toml"
    config.write_text("[pool]\ninitial_pool_size = 10\nmax_pool_size = 5\nmax_connections = 12\n")
    ready = tmp_path / "ready.json"

    result = broker_cli([str(config), "--port", "0", "--ready-file", str(ready)])

    assert result.returncode == CONFIG_ERROR_EXIT_CODE, result.stderr
    assert "initial_pool_size is 10" in result.stderr.lower()
    assert "max_pool_size is only 5" in result.stderr.lower()
    assert str(config) in result.stderr
    assert not ready.exists()


@pytest.mark.bundled_only
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ("[pool\ninitial_pool_size = 4\n", "not valid TOML"),
        ("[pool]\nmax_connections = 0\n", "max_connections is 0"),
        ("[pool]\nmax_clients_pool = 0\n", "max_clients_pool is 0"),
    ],
    ids=["missing-file", "invalid-toml", "zero-connections", "zero-legacy-pool"],
)
def test_unusable_config_exits_2(tmp_path, broker_cli, content, expected):
    config = tmp_path / "broker.toml"
    if content is not None:
        config.write_text(content)

    result = broker_cli([str(config), "--port", "0", "--ready-file", str(tmp_path / "ready.json")])

    assert result.returncode == CONFIG_ERROR_EXIT_CODE, result.stderr
    assert expected in result.stderr
    assert str(config) in result.stderr


@pytest.mark.bundled_only
def test_no_config_runs_on_defaults(launcher, paho):
    broker = launcher.start(use_config=False)

    client = paho.connect(broker)

    assert client.connack_reason == "Success"
    assert broker.ready["pool_capacity"] == 1024
    assert broker.ready["max_pool_size"] == 100_000
    assert broker.ready["max_connections"] == 1_000_000
    assert broker.ready["legacy"] is False
    assert broker.port != 1883
