"""One digit-separator rule for the numbers that TOML and Zig conversions write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from migrate.number_style import format_decimal, separator_group, write_number
from migrate.toml_rewrite import convert_toml
from migrate.zig_rewrite import convert_config_zig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VALUES = {"initial_pool_size": 1024, "max_pool_size": 100_000, "max_connections": 1_000_000, "forward_batch_size": 5000}


@pytest.mark.parametrize(
    ("literals", "group"),
    [
        (["100_000"], 3),
        (["4095", "1_000_000"], 3),
        (["10_0000"], 4),
        (["1_000"], 0),  # four digits show no habit
        (["100000", "5000"], 0),
        (["0x1_86A0"], 0),
        ([], 0),
    ],
)
def test_separator_group(literals: list[str], group: int) -> None:
    assert separator_group(literals) == group


@pytest.mark.parametrize(
    ("value", "group", "written"),
    [
        (1024, 3, "1_024"),
        (5000, 3, "5_000"),
        (512, 3, "512"),
        (100_000, 3, "100_000"),
        (1_000_000, 4, "100_0000"),
        (1024, 4, "1024"),
        (1024, 0, "1024"),
        (-5000, 3, "-5_000"),
    ],
)
def test_format_decimal(value: int, group: int, written: str) -> None:
    assert format_decimal(value, group) == written


def test_write_number_keeps_equal_literal() -> None:
    assert write_number(100_000, 3, "100000") == "100000"
    assert write_number(1024, 3, "100000") == "1_024"


def test_broker_example_numbers_all_separated(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    shutil.copyfile(EXAMPLES / "broker.toml", path)

    result = run_cli("convert", path)

    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert "initial_pool_size = 1_024  #" in text
    assert "forward_batch_size = 5_000  #" in text
    assert "max_connections = 1_000_000  #" in text


def _toml_literal(text: str, key: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith(key + " ="))
    return line.split("=", 1)[1].split("#")[0].strip()


def _zig_literal(text: str, name: str) -> str:
    line = next(line for line in text.splitlines() if f" {name}" in line and "=" in line)
    return line.split("=", 1)[1].split(";")[0].strip()


@pytest.mark.parametrize("legacy", ["100_000", "100000", "10_0000", "512"])
@pytest.mark.parametrize("other", ["", "1_000_000", "1000000"])
def test_toml_and_zig_write_numbers_alike(legacy: str, other: str) -> None:
    toml_text = f"max_clients_pool = {legacy}\n" + (f"max_connections = {other}\n" if other else "")
    zig_text = f"pub const MAX_CLIENTS_POOL = {legacy};\n" + (f"pub const MAX_CONNECTIONS = {other};\n" if other else "")

    toml = convert_toml(toml_text, VALUES, path="broker.toml")
    zig = convert_config_zig(zig_text, VALUES, path="config.zig")

    assert toml is not None and zig is not None
    for key in VALUES:
        assert _toml_literal(toml.text, key) == _zig_literal(zig, key.upper()), key
