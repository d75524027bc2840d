"""Where the legacy line's end-of-line comment goes, and that rollback brings it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.language import KEY_COMMENTS
from migrate.legacy_comment import comment_key
from migrate.toml_rewrite import convert_toml, revert_toml
from migrate.zig_rewrite import convert_config_zig, revert_config_zig

VALUES = {"initial_pool_size": 1024, "max_pool_size": 100_000}
CEILING_COMMENT = "# Client objects allocated before the first client connects; also the pool's ceiling."


@pytest.mark.parametrize(
    ("comment", "key"),
    [
        (CEILING_COMMENT, "max_pool_size"),
        ("# hard limit of pooled clients", "max_pool_size"),
        ("// 客户端对象上限", "max_pool_size"),
        ("// 最大客户端数", "max_pool_size"),
        ("# preallocated at startup", "initial_pool_size"),
        ("// 启动时预分配的客户端对象数", "initial_pool_size"),
    ],
)
def test_comment_key(comment: str, key: str) -> None:
    assert comment_key(comment) == key


def test_toml_ceiling_comment_moves_to_max_pool_size() -> None:
    text = f"[pool]\nmax_clients_pool = 100_000  {CEILING_COMMENT}\n"

    rewrite = convert_toml(text, VALUES, path="broker.toml")

    assert rewrite is not None
    assert rewrite.text == (
        "[pool]\n"
        f"initial_pool_size = 1_024  # {KEY_COMMENTS['en']['initial_pool_size']}\n"
        f"max_pool_size = 100_000  {CEILING_COMMENT}\n"
    )


def test_toml_other_comment_stays_on_initial_pool_size() -> None:
    text = "[pool]\nmax_clients_pool = 100_000  # preallocated at startup\n"

    rewrite = convert_toml(text, VALUES, path="broker.toml")

    assert rewrite is not None
    assert "initial_pool_size = 1_024  # preallocated at startup\n" in rewrite.text


@pytest.mark.parametrize("comment", [CEILING_COMMENT, "# preallocated at startup"])
def test_toml_revert_without_backup_restores_comment(comment: str) -> None:
    text = f"[pool]\r\nmax_clients_pool = 100_000  {comment}\r\nport = 1\r\n"
    converted = convert_toml(text, VALUES, path="broker.toml")
    assert converted is not None

    reverted = revert_toml(converted.text, path="broker.toml")

    assert reverted is not None
    assert reverted.text == text


def test_zig_ceiling_comment_moves_to_max_pool_size() -> None:
    text = "pub const MAX_CLIENTS_POOL: usize = 100_000; // 客户端对象上限\n"

    converted = convert_config_zig(text, VALUES, path="config.zig")

    assert converted == (
        f"pub const INITIAL_POOL_SIZE: usize = 1_024; // {KEY_COMMENTS['zh']['initial_pool_size']}\n"
        "pub const MAX_POOL_SIZE: usize = 100_000; // 客户端对象上限\n"
    )
    assert revert_config_zig(converted, path="config.zig") == text


def test_backup_restores_moved_comment_exactly(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    original = f"[pool]\nmax_clients_pool = 100_000  {CEILING_COMMENT}\n".encode()
    path.write_bytes(original)
    assert run_cli("convert", path).exit_code == 0
    assert CEILING_COMMENT in path.read_text(encoding="utf-8").splitlines()[2]

    result = run_cli("rollback", path)

    assert result.exit_code == 0, result.output
    assert path.read_bytes() == original
