"""Every error path of `poolmigrate convert`: exit code, message, and no file touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LEGACY = "# broker\n[pool]\nmax_clients_pool = 100_000\n"


def _assert_untouched(folder: Path, before: dict, take_snapshot) -> None:
    assert take_snapshot(folder) == before


def test_convert_rejects_invalid_toml_with_position(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = = 5\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 2
    assert f"{path}:2:" in result.stderr
    assert "invalid TOML" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("[pool\n", "1:6", "Expected ']' at the end of a table declaration."),
        ("[pool", "1:6", "Expected ']' at the end of a table declaration."),
        ("[pool]\nmax_clients_pool = = 5\n", "2:20", "Invalid value."),
    ],
)
def test_convert_reports_tomllib_reason(tmp_path: Path, run_cli, take_snapshot, text, position, reason) -> None:
    path = tmp_path / "invalid.toml"
    path.write_text(text, encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 2
    assert f"{path}:{position}: invalid TOML: {reason} Fix the syntax" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


@pytest.mark.parametrize("command", ["convert", "rollback"])
def test_named_file_of_other_type_is_rejected(tmp_path: Path, run_cli, take_snapshot, command) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("max_clients_pool = 5\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli(command, path)

    assert result.exit_code == 2
    assert f"{path}: not a TOML (.toml) or Zig (.zig) file; name a config file or a folder." in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_missing_file(tmp_path: Path, run_cli, take_snapshot) -> None:
    result = run_cli("convert", tmp_path / "absent.toml")
    assert result.exit_code == 2
    assert "absent.toml: file not found" in result.stderr
    assert take_snapshot(tmp_path) == {}


def test_convert_rejects_binary_file(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(b"max_clients_pool = 1\n\x00\x01\x02")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 2
    assert "binary file" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_non_utf8_file(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(b"[pool]\nmax_clients_pool = 1 # caf\xe9\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 2
    assert f"{path}:2:" in result.stderr
    assert "invalid UTF-8" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_convert_rejects_unreadable_file(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    path.chmod(0)
    try:
        result = run_cli("convert", path)
    finally:
        path.chmod(0o644)
    assert result.exit_code == 2
    assert "permission denied" in result.stderr
    assert path.read_text(encoding="utf-8") == LEGACY


def test_convert_rejects_pool_above_connection_cap(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100_000\nmax_connections = 10000\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--keep-limits", path)

    assert result.exit_code == 1
    assert f"{path}:3:" in result.stderr
    assert "MAX_CONNECTIONS is 10000 but MAX_POOL_SIZE would be 100000" in result.stderr
    assert "--scenario small" in result.stderr
    assert "--max-pool-size 10000" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_io_entries_above_u12(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\nio_entries = 8192\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--scenario", "small", path)

    assert result.exit_code == 1
    assert "IO_ENTRIES is 8192" in result.stderr
    assert "--scenario default" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_initial_above_max_flag(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--initial-pool-size", "5000", "--max-pool-size", "2000", path)

    assert result.exit_code == 1
    assert "--initial-pool-size 5000 and --max-pool-size 2000 are invalid together" in result.stderr
    assert "INITIAL_POOL_SIZE is 5000 but MAX_POOL_SIZE is only 2000" in result.stderr
    assert "To fix it, use --initial-pool-size 2000 or --max-pool-size 5000." in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_zero_initial_pool_size(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--initial-pool-size", "0", path)

    assert result.exit_code == 1
    assert f"{path}:3: --initial-pool-size 0 is invalid: INITIAL_POOL_SIZE must be at least 1." in result.stderr
    assert "--scenario" not in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_conflicting_keys(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\nmax_pool_size = 200\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 1
    assert "conflict" in result.stderr
    assert "line 2" in result.stderr
    assert "line 3" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_legacy_key_in_inline_table(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("pool = { max_clients_pool = 100 }\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 1
    assert "inline table" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_rejects_unknown_scenario(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--scenario", "huge", path)

    assert result.exit_code == 2
    assert "huge" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_writes_nothing_when_one_file_fails(tmp_path: Path, run_cli, take_snapshot) -> None:
    (tmp_path / "good.toml").write_text(LEGACY, encoding="utf-8")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "bad.toml").write_text("[pool]\nmax_clients_pool = 1\nmax_connections = 10\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--keep-limits", tmp_path)

    assert result.exit_code == 1
    assert "bad.toml:3:" in result.stderr
    assert "Not written, because another file failed" in result.stdout
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_writes_nothing_when_one_file_is_invalid_toml(tmp_path: Path, run_cli, take_snapshot) -> None:
    (tmp_path / "good.toml").write_text(LEGACY, encoding="utf-8")
    (tmp_path / "broken.toml").write_text("max_clients_pool = [1,\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", tmp_path)

    assert result.exit_code == 2
    assert "broken.toml:" in result.stderr
    _assert_untouched(tmp_path, before, take_snapshot)


def test_convert_puts_files_back_when_a_write_fails(tmp_path: Path, run_cli, take_snapshot, monkeypatch) -> None:
    import migrate.transaction

    (tmp_path / "a.toml").write_text(LEGACY, encoding="utf-8")
    (tmp_path / "b.toml").write_text(LEGACY, encoding="utf-8")
    before = take_snapshot(tmp_path)
    real_write = migrate.transaction.atomic_write
    calls = []

    def failing_write(path: Path, data: bytes, mode: int | None = None) -> None:
        calls.append(path)
        # The sixth write is b.toml itself, after a.toml and both backups and journals.
        if len(calls) == 6:
            raise OSError(28, "No space left on device")
        real_write(path, data, mode)

    monkeypatch.setattr(migrate.transaction, "atomic_write", failing_write)
    result = run_cli("convert", tmp_path)

    assert result.exit_code == 2
    assert "No space left on device" in result.stderr
    assert "every file was put back" in result.stderr
    assert take_snapshot(tmp_path) == before
