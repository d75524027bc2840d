"""Config errors with file, line and fix; warnings for misspelt keys; the stop log line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.config import SettingsError, closest_key, load_config

CONFIG_ERROR_EXIT_CODE = 2


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_problems(tmp_path: Path, text: str) -> list[str]:
    """Load `text` as a config file and return the problems of the SettingsError it raises."""
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    return [problem.replace(str(path), "FILE") for problem in raised.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[pool]\ninitial_pool_size = 2048\nmax_pool_size = 1024\n",
            "FILE:2: initial_pool_size is 2048 but max_pool_size is only 1024; the pool cannot start above its "
            "ceiling. Set max_pool_size to at least 2048 or lower initial_pool_size to at most 1024; "
            "'poolmigrate presets' lists sizes that fit together.",
        ),
        (
            "[pool]\nINITIAL_POOL_SIZE = 0\n",
            "FILE:2: INITIAL_POOL_SIZE is 0 but must be at least 1. Set INITIAL_POOL_SIZE to a whole number "
            "from 1 to max_pool_size (100000); the default is 1024.",
        ),
        (
            "[pool]\nmax_connections = 500\n",
            "FILE:2: max_connections is 500 but max_pool_size would be 100000; the pool ceiling cannot exceed "
            "the connection cap. max_pool_size is not in the file, so it has its default 100000. Set "
            "max_connections to at least 100000 or lower max_pool_size to at most 500; "
            "'poolmigrate presets' lists sizes that fit together.",
        ),
        (
            "max_clients_pool = 2000\nmax_connections = 1000\n",
            "FILE:2: max_connections is 1000 but max_pool_size would be 2000; the pool ceiling cannot exceed "
            "the connection cap. max_pool_size is not in the file, so it takes max_clients_pool's value 2000. "
            "Set max_connections to at least 2000 or lower max_pool_size to at most 1000; "
            "'poolmigrate presets' lists sizes that fit together.",
        ),
        (
            "[pool]\nmax_clients_pool = -5\n",
            "FILE:2: max_clients_pool is -5 but must be at least 1. Set max_clients_pool to at least 1, or run "
            "'poolmigrate convert' to replace it with initial_pool_size and max_pool_size.",
        ),
        (
            "[pool]\nio_entries = 4096\n",
            "FILE:2: io_entries is 4096 but must be between 1 and 4095 (it is a u12 in the Zig broker). "
            "Set io_entries to a whole number from 1 to 4095; the default is 4095.",
        ),
        (
            "growth_factor = '1.5'\n",
            "FILE:1: growth_factor must be a number, not '1.5'. Write a number greater than 1 without quotes, "
            "such as growth_factor = 1.5.",
        ),
        (
            "max_pool_size = '100k'\n",
            "FILE:1: max_pool_size must be an integer, not '100k'. Write a whole number without quotes, "
            "such as max_pool_size = 100_000.",
        ),
        (
            "port = 70000\n",
            "FILE:1: port is 70000 but must be between 0 and 65535. Set port to a TCP port from 1 to 65535, "
            "or to 0 to let the operating system pick a free one.",
        ),
        (
            "[broker]\nsys_interval = '10s'\n",
            "FILE:2: sys_interval is '10s' but must be a number of seconds. Write the seconds between $SYS "
            "publications without quotes or units, such as sys_interval = 10, or 0 to turn them off.",
        ),
        (
            "[broker]\nsys_interval = -1\n",
            "FILE:2: sys_interval is -1 but must be 0 or more seconds. Write the seconds between $SYS "
            "publications without quotes or units, such as sys_interval = 10, or 0 to turn them off.",
        ),
        (
            "host = 127\n",
            'FILE:1: host is 127 but must be a string. Write the address in quotes, such as host = "127.0.0.1".',
        ),
        (
            "[limits]\nmax_packet_size = 1.5\n",
            "FILE:2: max_packet_size is 1.5 but must be a positive whole number. Set max_packet_size to a whole "
            "number greater than 0, without quotes; the default is 1048576 bytes.",
        ),
        (
            "[limits]\n\nconnect_timeout = 0\n",
            "FILE:3: connect_timeout is 0 but must be a positive number. Set connect_timeout to a number "
            "greater than 0, without quotes; the default is 10.0 seconds.",
        ),
        (
            "allow_anonymous = 'false'\n",
            "FILE:1: allow_anonymous is 'false' but must be true or false. Write allow_anonymous = true or "
            "allow_anonymous = false, without quotes.",
        ),
        (
            "[a]\nport = 1\n[b]\nport = 2\n",
            "FILE:4: port is set twice with different values: a.port = 1 (line 2) and b.port = 2. Keep one of them.",
        ),
        (
            "[[acl]]\ntopic = 'a'\n\n[[acl]]\ntopic = 'b'\naccess = 'write'\n",
            "FILE:6: acl[1].access is 'write' but must be publish, subscribe or readwrite. Use one of these; "
            "without access the rule applies to both directions.",
        ),
        (
            "[[acl]]\naccess = 'publish'\n",
            "FILE:1: acl[0].topic is missing. Give a topic filter such as 'sensors/#'.",
        ),
        (
            "[[acl]]\ntopic = 'a/#/b'\n",
            "FILE:2: acl[0].topic is 'a/#/b', which is not a valid topic filter: The topic filter 'a/#/b' has "
            "'#' in level 2; '#' must be a whole level and the last one, as in 'sensors/#'. "
            "Give a topic filter such as 'sensors/#'.",
        ),
        (
            "[[acl]]\ntopic = 'a'\nallow = 'no'\n",
            "FILE:3: acl[0].allow is 'no' but must be true or false. Write allow = true or allow = false, "
            "without quotes.",
        ),
        (
            "acl = ['a']\n",
            "FILE:1: acl must be an array of tables ([[acl]]), not ['a']. Write each rule as its own [[acl]] "
            "table with a topic and, where needed, user, access and allow.",
        ),
        (
            "[pool\n",
            "FILE:1: broker.toml is not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 1, column 6). Correct the syntax at that position.",
        ),
    ],
    ids=[
        "start-above-ceiling", "upper-case-spelling", "ceiling-default-above-cap", "legacy-derived-ceiling",
        "legacy-negative", "io-entries", "growth-factor-string", "pool-size-string", "port-range",
        "sys-interval-unit", "sys-interval-negative", "host-number", "limit-not-whole", "limit-zero",
        "allow-anonymous-string", "key-twice", "acl-access", "acl-topic-missing", "acl-topic-invalid",
        "acl-allow-string", "acl-not-tables", "invalid-toml",
    ],
)
def test_config_error_names_line_value_and_fix(tmp_path, text, expected):
    assert load_problems(tmp_path, text) == [expected]


def test_legacy_negative_gives_one_problem(tmp_path):
    problems = load_problems(tmp_path, "max_clients_pool = -5\n")

    assert len(problems) == 1
    assert "initial_pool_size" not in problems[0].split(".")[0]
    assert "INITIAL_POOL_SIZE" not in problems[0]


def test_every_problem_is_reported_on_its_own_line(tmp_path):
    path = write(tmp_path, "[broker]\nport = 70000\n[pool]\nio_entries = 0\n[limits]\nconnect_timeout = -1\n")

    with pytest.raises(SettingsError) as raised:
        load_config(path)

    lines = str(raised.value).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [f"{path}:4:", f"{path}:6:", f"{path}:2:"]


def test_missing_password_file_names_config_line_and_path(tmp_path):
    path = write(tmp_path, "[broker]\nallow_anonymous = false\npassword_file = 'nope'\n")
    resolved = tmp_path.absolute() / "nope"

    with pytest.raises(SettingsError) as raised:
        load_config(path)

    assert str(raised.value) == (
        f"{path}:3: password_file is 'nope', but the password file {resolved} was not found. "
        f"Create it with 'mosquitto_passwd -c {resolved} USER', or set password_file to an existing file; "
        f"a relative path is read from {tmp_path.absolute()}."
    )


def test_password_file_is_resolved_to_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "passwd").write_text("")
    write(tmp_path, "password_file = 'passwd'\n")
    monkeypatch.chdir(tmp_path)

    config = load_config("broker.toml")

    assert config.access.password_file == tmp_path / "passwd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('hots = "127.0.0.1"\n', ["FILE:1: hots is not a broker setting, so the broker ignores it. Did you mean host?"]),
        (
            "[pool]\ninital_pool_size = 10\n",
            ["FILE:2: inital_pool_size is not a broker setting, so the broker ignores it. Did you mean initial_pool_size?"],
        ),
        (
            "[pool]\nMAX_POOL_SIZE = 100_000\nMAX_CONECTIONS = 100\n",
            ["FILE:3: MAX_CONECTIONS is not a broker setting, so the broker ignores it. Did you mean MAX_CONNECTIONS?"],
        ),
        (
            "[[acl]]\ntopic = 'a'\nacess = 'publish'\n",
            ["FILE:3: acess is not a key of an access rule, so the rule ignores it. Did you mean access?"],
        ),
        (
            "name = 'edge'\ndescription = 'x'\n[[targets]]\nlabel = 'startup'\nmax_mb = 6\n[deploy]\nuser = 'ops'\n",
            [],
        ),
    ],
    ids=["swapped-letters", "missing-letter", "upper-case", "acl-rule-key", "unrelated-keys-silent"],
)
def test_misspelt_key_gives_warning(tmp_path, text, expected):
    path = write(tmp_path, text)

    warnings = load_config(path).warnings

    assert [warning.replace(str(path), "FILE") for warning in warnings] == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hots", "host"),
        ("prot", "port"),
        ("portt", "port"),
        ("inital_pool_size", "initial_pool_size"),
        ("max_connection", "max_connections"),
        ("sys_intervall", "sys_interval"),
        ("name", None),
        ("targets", None),
        ("timeout", None),
        ("all", None),
    ],
)
def test_closest_key(name, expected):
    known = ("host", "port", "acl", "initial_pool_size", "max_connections", "sys_interval", "connect_timeout")
    assert closest_key(name, known) == expected


@pytest.mark.bundled_only
def test_broker_logs_misspelt_key_at_startup(launcher):
    text = 'hots = "127.0.0.1"\n[pool]\ninital_pool_size = 10\nmax_pool_size = 2048\nmax_connections = 2048\n'
    broker = launcher.start(config_text=text)

    host_line = broker.wait_for_log(r" WARNING broker\.config: .*hots is not a broker setting.*").group(0)
    pool_line = broker.wait_for_log(r" WARNING broker\.config: .*inital_pool_size is not.*").group(0)

    assert f"{broker.config_path}:1: " in host_line
    assert host_line.endswith("Did you mean host?")
    assert f"{broker.config_path}:3: " in pool_line
    assert pool_line.endswith("Did you mean initial_pool_size?")
    assert broker.ready["pool_capacity"] == 1024


@pytest.mark.bundled_only
def test_broker_stays_silent_on_unrelated_keys(launcher):
    text = "[deploy]\nname = 'edge'\nregion = 'eu'\n[pool]\ninitial_pool_size = 4\nmax_pool_size = 8\nmax_connections = 8\n"
    broker = launcher.start(config_text=text)

    broker.wait_for_log(r" INFO .*Listening on ")

    assert broker.log_lines("WARNING") == []


@pytest.mark.bundled_only
def test_broker_prints_each_config_error_on_its_own_line(tmp_path, broker_cli):
    config = tmp_path / "broker.toml"
    config.write_text("[broker]\nport = 70000\n[pool]\ninitial_pool_size = 0\n")

    result = broker_cli([str(config), "--ready-file", str(tmp_path / "ready.json")])

    assert result.returncode == CONFIG_ERROR_EXIT_CODE, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"error: {config}:4: initial_pool_size is 0 but must be at least 1. Set ")
    assert lines[1].startswith(f"error: {config}:2: port is 70000 but must be between 0 and 65535. Set ")


@pytest.mark.bundled_only
@pytest.mark.parametrize(("clients", "phrase"), [(0, "0 connections."), (1, "1 connection."), (2, "2 connections.")])
def test_stop_line_counts_connections(launcher, paho, clients, phrase):
    broker = launcher.start()
    for _ in range(clients):
        paho.connect(broker)

    assert broker.stop() == 0

    broker.wait_for_log(rf"Stopping: closing the listener and {re.escape(phrase)}$")


def test_misspelt_key_listed_with_the_errors_it_causes(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[pool]\ninital_pool_size = 10\nmax_pool_size = 100\n", encoding="utf-8")

    with pytest.raises(SettingsError) as raised:
        load_config(path)

    first, *rest = raised.value.problems
    assert first.startswith(f"{path}:2: inital_pool_size is not a broker setting")
    assert "Did you mean initial_pool_size?" in first
    assert any("max_pool_size is only 100" in problem for problem in rest)
