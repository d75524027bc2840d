"""Reading broker settings from TOML: placement, case, validation and errors."""

from pathlib import Path

import pytest

from broker.config import BrokerConfig, SettingsError, check_pool, load_config, locate_key, locate_table


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text",
    [
        "initial_pool_size = 8\nmax_pool_size = 16\nmax_connections = 32\n",
        "[pool]\nINITIAL_POOL_SIZE = 8\nMAX_POOL_SIZE = 16\nMAX_CONNECTIONS = 32\n",
        "pool.initial_pool_size = 8\npool.max_pool_size = 16\npool.max_connections = 32\n",
        "[a]\n  [a.b]\n  Initial_Pool_Size = 8\n  max_pool_size = 16\n[c]\nmax_connections = 32\n",
    ],
    ids=["top-level", "upper-case-table", "dotted", "nested-mixed-case"],
)
def test_pool_keys_found_anywhere(tmp_path, text):
    pool = load_config(write(tmp_path, text)).pool
    assert pool.initial_pool_size == 8
    assert pool.max_pool_size == 16
    assert pool.max_connections == 32
    assert not pool.legacy


def test_no_config_gives_default_preset():
    config = load_config(None)
    assert config == BrokerConfig()
    assert config.pool.initial_pool_size == 1024
    assert config.pool.max_pool_size == 100_000
    assert (config.host, config.port) == ("127.0.0.1", 1883)


def test_legacy_key_preheats_everything_as_ceiling(tmp_path):
    pool = load_config(write(tmp_path, "[pool]\nMAX_CLIENTS_POOL = 100_000\n")).pool
    assert pool.legacy
    assert pool.initial_pool_size == 100_000
    assert pool.max_pool_size == 100_000
    assert pool.max_connections >= 100_000


def test_same_key_twice_with_different_values_is_rejected(tmp_path):
    path = write(tmp_path, "[[broker]]\nmax_pool_size = 10\n[[broker]]\nmax_pool_size = 20\n")
    with pytest.raises(SettingsError, match=r"max_pool_size is set twice.*broker\[0\]\.max_pool_size = 10"):
        load_config(path)


def test_same_key_twice_with_equal_values_is_accepted(tmp_path):
    path = write(tmp_path, "[[broker]]\nmax_pool_size = 10\ninitial_pool_size = 5\n[[broker]]\nmax_pool_size = 10\n")
    assert load_config(path).pool.max_pool_size == 10


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"initial_pool_size": 0}, "INITIAL_POOL_SIZE is 0 but must be at least 1"),
        ({"initial_pool_size": 20, "max_pool_size": 10}, "INITIAL_POOL_SIZE is 20 but MAX_POOL_SIZE is only 10"),
        ({"max_pool_size": 100_000, "max_connections": 10_000}, "MAX_CONNECTIONS is 10000 but MAX_POOL_SIZE would be 100000"),
        ({"io_entries": 4096}, "IO_ENTRIES is 4096 but must be between 1 and 4095"),
        ({"io_entries": 0}, "IO_ENTRIES is 0"),
        ({"forward_batch_size": 0}, "FORWARD_BATCH_SIZE is 0 but must be at least 1"),
        ({"expansion_threshold_percent": 101}, "EXPANSION_THRESHOLD_PERCENT is 101"),
        ({"growth_factor": 1.0}, "GROWTH_FACTOR is 1.0 but must be greater than 1"),
        ({"max_pool_size": "big"}, "MAX_POOL_SIZE must be an integer, not 'big'"),
        ({"max_clients_pool": True}, "MAX_CLIENTS_POOL must be an integer, not True"),
    ],
)
def test_check_pool_names_value_and_rule(values, expected):
    problems = check_pool(values)
    assert len(problems) >= 1
    assert any(expected in problem for problem in problems), problems


def test_check_pool_accepts_valid_values():
    assert check_pool({"initial_pool_size": 1, "max_pool_size": 1, "max_connections": 1}) == []


def test_invalid_settings_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "# pool\ninitial_pool_size = 5\nmax_pool_size = 4\n")
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}:2: initial_pool_size is 5 but max_pool_size is only 4")


def test_invalid_toml_is_reported_with_position(tmp_path):
    path = write(tmp_path, "[pool\nmax_pool_size = 4\n")
    with pytest.raises(SettingsError, match=r"is not valid TOML.*line 1"):
        load_config(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(SettingsError, match="was not found"):
        load_config(tmp_path / "absent.toml")


def test_limits_access_and_rules_are_read(tmp_path):
    (tmp_path / "passwd").write_text("")
    text = """
[broker]
port = 0
sys_interval = 0.2
metrics_port = 9100
allow_anonymous = false
password_file = "passwd"
[limits]
connect_timeout = 0.5
max_packet_size = 4096
[[acl]]
user = "alice"
topic = "secret/#"
access = "subscribe"
allow = false
"""
    config = load_config(write(tmp_path, text))
    assert config.port == 0
    assert config.sys_interval == 0.2
    assert config.metrics_port == 9100
    assert config.limits.connect_timeout == 0.5
    assert config.limits.max_packet_size == 4096
    assert config.access.allow_anonymous is False
    assert config.access.password_file == tmp_path / "passwd"
    (rule,) = config.access.rules
    assert (rule.user, rule.topic, rule.publish, rule.subscribe, rule.allow) == ("alice", "secret/#", False, True, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port = 70000\n", "port is 70000 but must be between 0 and 65535"),
        ("port = 'x'\n", "port is 'x' but must be an integer"),
        ("connect_timeout = -1\n", "connect_timeout is -1 but must be a positive number"),
        ("[[acl]]\ntopic = 'a'\naccess = 'write'\n", "acl[0].access is 'write'"),
        ("[[acl]]\naccess = 'publish'\n", "acl[0].topic is missing"),
    ],
)
def test_invalid_broker_values_are_rejected(tmp_path, text, expected):
    with pytest.raises(SettingsError) as raised:
        load_config(write(tmp_path, text))
    assert expected in str(raised.value)


def test_locate_key_finds_line_and_column():
    text = "# pool\n[pool]\n  MAX_CLIENTS_POOL = 10\n"
    assert locate_key(text, "max_clients_pool") == (3, 3)
    assert locate_key("pool.max_pool_size = 3\n", "max_pool_size") == (1, 6)
    assert locate_key(text, "absent") is None


def test_locate_key_finds_later_occurrence():
    text = "[a]\nport = 1\n[b]\nmetrics_port = 3\nPORT = 2\n"
    assert locate_key(text, "port", 1) == (5, 1)
    assert locate_key(text, "port", 2) is None


def test_locate_table_finds_array_table_header():
    text = "[[acl]]\ntopic = 'a'\n\n[[ acl ]]\ntopic = 'b'\n"
    assert locate_table(text, "acl") == (1, 3)
    assert locate_table(text, "acl", 1) == (4, 4)
    assert locate_table(text, "acl", 2) is None
