"""One end-to-end run of `python -m broker` with paho-mqtt clients; the broad client suite lives elsewhere."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

READY_TIMEOUT_SECONDS = 15.0
MESSAGE_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def broker_process(tmp_path: Path):
    config = tmp_path / "broker.toml"
    config.write_text(
        '[broker]\nhost = "127.0.0.1"\nport = 0\nsys_interval = 0\n'
        "[pool]\ninitial_pool_size = 2\nmax_pool_size = 4\nmax_connections = 8\n",
        encoding="utf-8",
    )
    ready_file = tmp_path / "ready.json"
    log_file = (tmp_path / "broker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", str(config), "--ready-file", str(ready_file)],
        stderr=log_file,
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The broker did not start: {(tmp_path / 'broker.log').read_text()}")
        time.sleep(0.02)
    yield process, json.loads(ready_file.read_text()), tmp_path / "broker.log"
    if process.poll() is None:
        process.kill()
        process.wait()
    log_file.close()


def start_client(port: int, client_id: str, received: queue.Queue) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_message = lambda c, userdata, message: received.put(
        (message.topic, message.payload, message.qos, message.retain)
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_paho_clients_exchange_every_qos(broker_process):
    process, ready, log_path = broker_process
    received: queue.Queue = queue.Queue()
    subscriber = start_client(ready["port"], "subscriber", received)
    publisher = start_client(ready["port"], "publisher", received)
    try:
        result, _ = subscriber.subscribe("smoke/#", qos=2)
        assert result == mqtt.MQTT_ERR_SUCCESS
        # A retained message proves the subscription is active before the live ones go out.
        publisher.publish("smoke/ready", b"up", qos=1, retain=True).wait_for_publish(MESSAGE_TIMEOUT_SECONDS)
        assert received.get(timeout=MESSAGE_TIMEOUT_SECONDS)[:2] == ("smoke/ready", b"up")

        for qos in (0, 1, 2):
            publisher.publish("smoke/data", f"qos {qos}".encode(), qos=qos).wait_for_publish(MESSAGE_TIMEOUT_SECONDS)
        messages = [received.get(timeout=MESSAGE_TIMEOUT_SECONDS) for _ in range(3)]
    finally:
        subscriber.loop_stop()
        publisher.loop_stop()

    assert messages == [
        ("smoke/data", b"qos 0", 0, False),
        ("smoke/data", b"qos 1", 1, False),
        ("smoke/data", b"qos 2", 2, False),
    ]
    assert ready["pool_capacity"] == 2
    assert ready["max_connections"] == 8

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert "Listening on 127.0.0.1:" in log_path.read_text()
