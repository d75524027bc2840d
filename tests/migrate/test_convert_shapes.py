"""Convert and roll back each TOML shape through the real CLI, checking every key and byte."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrate.language import KEY_COMMENTS

DEFAULT_VALUES = {
    "initial_pool_size": 1024,
    "max_pool_size": 100_000,
    "max_connections": 1_000_000,
    "io_entries": 4095,
    "forward_batch_size": 5000,
}
POOL_KEY_LINE = re.compile(
    r"^\s*(?:[\w\"'.-]+\.)?[\"']?(max_clients_pool|initial_pool_size|max_pool_size|max_connections|io_entries|forward_batch_size)[\"']?\s*=",
    re.I,
)


@dataclass(frozen=True)
class Shape:
    name: str
    text: str
    # Paths of the tables that must hold the converted keys (tuple of keys and indexes).
    tables: list[tuple[Any, ...]]
    upper: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


SHAPES = [
    Shape("top_level", "port = 1883\nmax_clients_pool = 100000\nhost = \"127.0.0.1\"\n", [()]),
    Shape("pool_table", "[pool]\nmax_clients_pool = 100000\nio_entries = 256\n\n[limits]\nmax_packet_size = 1024\n", [("pool",)]),
    Shape("dotted_key", "name = \"edge\"\npool.max_clients_pool = 5000\npool.other = 1\n", [("pool",)]),
    Shape("upper_case", "[pool]\nMAX_CLIENTS_POOL = 100000\nIO_ENTRIES = 4095\n", [("pool",)], upper=True),
    Shape(
        "array_of_tables",
        "[[brokers]]\nname = \"a\"\nmax_clients_pool = 10\n\n[[brokers]]\nname = \"b\"\nmax_clients_pool = 20\n",
        [("brokers", 0), ("brokers", 1)],
    ),
    Shape("indented_subtable", "[broker]\nhost = \"x\"\n  [broker.pool]\n  max_clients_pool = 100\n  io_entries = 10\n", [("broker", "pool")]),
    Shape("end_of_line_comment", "[pool]\nmax_clients_pool = 100000  # preallocated at startup\n", [("pool",)]),
    Shape("crlf", "# broker\r\n[pool]\r\nmax_clients_pool = 100\r\nport = 1\r\n", [("pool",)]),
    Shape("no_final_newline", "host = \"x\"\n[pool]\nmax_clients_pool = 100", [("pool",)]),
    Shape("chinese_comments", "# 代理配置\n[pool]\n# 预分配的客户端对象\nmax_clients_pool = 100\n", [("pool",)]),
    Shape("underscore_numbers", "[pool]\nmax_clients_pool = 100_000\n", [("pool",)]),
    Shape("quoted_key", "[pool]\n\"max_clients_pool\" = 100\n", [("pool",)]),
]


def _table(document: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    node: Any = document
    for part in path:
        node = node[part]
    return node


def _other_lines(text: str) -> list[str]:
    """Return the lines that hold no pool key, line endings included."""
    return [line for line in text.splitlines(keepends=True) if not POOL_KEY_LINE.match(line)]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_convert_then_rollback_each_shape(shape: Shape, tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    original = shape.text.encode("utf-8")
    path.write_bytes(original)

    converted_run = run_cli("convert", path)
    assert converted_run.exit_code == 0, converted_run.output
    assert "converted" in converted_run.stdout
    converted = path.read_bytes().decode("utf-8")
    document = tomllib.loads(converted)

    for table_path in shape.tables:
        table = _table(document, table_path)
        for name, value in DEFAULT_VALUES.items():
            key = name.upper() if shape.upper else name
            assert table.get(key) == value, f"{key} in {table_path}"
        legacy = "MAX_CLIENTS_POOL" if shape.upper else "max_clients_pool"
        assert legacy not in table
    assert _other_lines(converted) == _other_lines(shape.text)

    rollback_run = run_cli("rollback", path)
    assert rollback_run.exit_code == 0, rollback_run.output
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker.toml"]


def test_convert_keeps_crlf_line_endings(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(b"# broker\r\n[pool]\r\nmax_clients_pool = 100\r\nport = 1\r\n")
    assert run_cli("convert", path).exit_code == 0
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data.count(b"\r\n") == 8


def test_convert_keeps_missing_final_newline(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert not text.endswith("\n")
    assert text.startswith("[pool]\ninitial_pool_size = 1024")


def test_convert_adds_chinese_comments_to_chinese_file(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("# 代理配置\n[pool]\n# 预分配的客户端对象\nmax_clients_pool = 100\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[3].endswith(KEY_COMMENTS["zh"]["initial_pool_size"])
    assert lines[4].endswith(KEY_COMMENTS["zh"]["max_pool_size"])
    assert lines[5].endswith(KEY_COMMENTS["zh"]["max_connections"])


def test_convert_adds_english_comments_to_english_file(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("# broker settings\n[pool]\nmax_clients_pool = 100\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[3] == f"max_pool_size = 100000  # {KEY_COMMENTS['en']['max_pool_size']}"


def test_convert_keeps_legacy_comment_on_first_pool_key(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100000   # preallocated at startup\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "initial_pool_size = 1024   # preallocated at startup"


def test_convert_writes_underscore_numbers_like_file(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100_000\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert "max_pool_size = 100_000 " in text
    assert "max_connections = 1_000_000 " in text


def test_convert_spells_dotted_keys_with_same_prefix(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("pool.max_clients_pool = 5000\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(" =")[0] for line in lines] == [
        "pool.initial_pool_size",
        "pool.max_pool_size",
        "pool.max_connections",
        "pool.io_entries",
        "pool.forward_batch_size",
    ]


def test_convert_updates_existing_limit_in_place(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\n\n[io]\nio_entries = 256  # queue depth\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n[io]\nio_entries = 4095  # queue depth\n")
    assert text.count("io_entries") == 1


def test_convert_keeps_indentation_of_sub_table(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[broker]\n  [broker.pool]\n  max_clients_pool = 100\n", encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    lines = path.read_text(encoding="utf-8").splitlines()[2:]
    assert all(line.startswith("  ") and not line.startswith("   ") for line in lines)
