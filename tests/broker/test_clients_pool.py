"""The dynamic client pool seen from outside: $SYS values, log lines and the connection cap."""

from __future__ import annotations

import time

import pytest
from rawclient import PINGREQ, PINGRESP, control_packet

pytestmark = [pytest.mark.timeout(60), pytest.mark.bundled_only]

SERVER_UNAVAILABLE = 3
SYS_WAIT = 5.0

POOL_SETTINGS = {
    "broker": {"sys_interval": 0.2},
    "pool": {
        "initial_pool_size": 4,
        "max_pool_size": 9,
        "max_connections": 12,
        "expansion_threshold_percent": 80,
        "growth_factor": 1.5,
    },
}
LEGACY_SETTINGS = {
    "broker": {"sys_interval": 0.2},
    "pool": {"max_clients_pool": 20, "initial_pool_size": None, "max_pool_size": None, "max_connections": None},
}


class PoolObserver:
    """A paho client that follows the $SYS/broker/pool/... values."""

    def __init__(self, client) -> None:
        self.client = client
        self.values: dict[str, str] = {}
        client.subscribe("$SYS/broker/pool/#", qos=0)

    def _read(self, deadline: float) -> str:
        message = self.client.next_message(max(deadline - time.monotonic(), 0.001))
        name = message.topic.removeprefix("$SYS/broker/pool/")
        self.values[name] = message.payload.decode()
        return name

    def wait_for(self, name: str, expected: int, timeout: float = SYS_WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.values.get(name) != str(expected):
            if time.monotonic() > deadline:
                raise AssertionError(f"pool/{name} did not become {expected} within {timeout} s; values {self.values}.")
            self._read(deadline)

    def next_value(self, name: str, timeout: float = SYS_WAIT) -> int:
        """Return the next published value of pool/`name`."""
        deadline = time.monotonic() + timeout
        while self._read(deadline) != name:
            pass
        return int(self.values[name])


def open_connection(raw, broker, client_id: str):
    client = raw.open(broker)
    connack = client.connect(client_id)
    assert connack.body == bytes([0, 0]), f"{client_id} was refused with CONNACK {connack.body!r}."
    return client


def test_pool_grows_4_6_9_then_stops(launcher, paho, raw):
    broker = launcher.start(POOL_SETTINGS)
    observer = PoolObserver(paho.connect(broker))
    connections = []

    # The observer is connection 1; open the others one by one and read the capacity each time.
    capacities = []
    for live in range(1, 13):
        if live > 1:
            connections.append(open_connection(raw, broker, f"pool-{live}"))
        observer.wait_for("live", live)
        capacities.append(observer.next_value("capacity"))

    assert broker.ready["pool_capacity"] == 4
    assert capacities == [4, 4, 4, 4, 6, 9, 9, 9, 9, 9, 9, 9]
    observer.wait_for("direct", 3)
    observer.wait_for("expansions", 2)
    observer.wait_for("preheated", 9)
    grew = [line for line in broker.log_lines("INFO") if "Pool grew" in line]
    assert len(grew) == 2, grew
    assert "Pool grew from 4 to 6 slots at 4 live connections; RSS " in grew[0]
    assert "Pool grew from 6 to 9 slots at 5 live connections; RSS " in grew[1]


def test_connection_past_max_connections_gets_code_3(launcher, paho, raw, mosquitto):
    broker = launcher.start(POOL_SETTINGS)
    observer = PoolObserver(paho.connect(broker))
    connections = [open_connection(raw, broker, f"cap-{index}") for index in range(2, 13)]
    observer.wait_for("live", 12)

    rejected = raw.open(broker)
    connack = rejected.connect("cap-13", expect_success=False)

    refused = mosquitto.pub(broker, "-i", "cap-mosquitto-pub", "-t", "pool/refused", "-m", "x")

    assert connack.body == bytes([0, SERVER_UNAVAILABLE])
    assert rejected.wait_closed()
    assert refused.returncode != 0
    assert "unavailable" in refused.stderr.lower(), refused.stderr
    for client in connections:
        client.send(control_packet(PINGREQ << 4, b""))
        assert client.read_packet().packet_type == PINGRESP
    observer.client.publish("pool/check", b"still served", qos=1)
    connections[0].close()
    observer.wait_for("live", 11)
    open_connection(raw, broker, "cap-after-close")
    observer.wait_for("live", 12)


def test_legacy_pool_warns_and_never_grows(launcher, paho, raw):
    broker = launcher.start(LEGACY_SETTINGS)
    observer = PoolObserver(paho.connect(broker))

    for index in range(2, 19):
        open_connection(raw, broker, f"legacy-{index}")
    observer.wait_for("live", 18)
    capacity = observer.next_value("capacity")

    assert broker.ready["legacy"] is True
    assert broker.ready["pool_capacity"] == 20
    assert capacity == 20
    observer.wait_for("expansions", 0)
    warnings = [line for line in broker.log_lines("WARNING") if "max_clients_pool is deprecated" in line]
    assert len(warnings) == 1, broker.log_text()
    assert "preheated 20 slots" in warnings[0]
    assert "poolmigrate convert" in warnings[0]
    assert not [line for line in broker.log_lines() if "Pool grew" in line]
