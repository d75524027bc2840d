"""`poolmigrate convert` never overwrites a backup whose bytes differ from the file it converts."""

from __future__ import annotations

from pathlib import Path

LEGACY = "# broker\n[pool]\nmax_clients_pool = 50_000  # preallocated\nport = 1883\n"
OTHER = "[pool]\nmax_clients_pool = 200\n"


def _convert_then_force_rollback(path: Path, run_cli) -> None:
    """Leave `path` in the state a forced rollback leaves: legacy key back, original kept in the backup."""
    path.write_bytes(LEGACY.encode("utf-8"))
    converted = run_cli("convert", path)
    assert converted.exit_code == 0, converted.output
    path.write_bytes(path.read_bytes().replace(b"port = 1883", b"port = 1884"))
    reverted = run_cli("rollback", "--force", path)
    assert reverted.exit_code == 0, reverted.output


def test_convert_after_forced_rollback_keeps_backup(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    backup = tmp_path / "broker.toml.poolmigrate-backup"
    _convert_then_force_rollback(path, run_cli)
    path.write_bytes(path.read_bytes().replace(b"port = 1884", b"port = 1885"))
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 1, result.output
    assert f"{backup} already exists and contains other bytes (an earlier original)" in result.stderr
    assert "Move it away or delete it, then run the command again." in result.stderr
    assert take_snapshot(tmp_path) == before
    assert backup.read_bytes() == LEGACY.encode("utf-8")


def test_convert_earlier_backup_stops_every_file(tmp_path: Path, run_cli, take_snapshot) -> None:
    guarded = tmp_path / "broker.toml"
    _convert_then_force_rollback(guarded, run_cli)
    fresh = tmp_path / "site.toml"
    fresh.write_bytes(OTHER.encode("utf-8"))
    before = take_snapshot(tmp_path)

    result = run_cli("convert", fresh, guarded)

    assert result.exit_code == 1, result.output
    assert "broker.toml.poolmigrate-backup already exists" in result.stderr
    assert "Not written, because another file failed." in result.output
    assert take_snapshot(tmp_path) == before
    assert not (tmp_path / "site.toml.poolmigrate-backup").exists()
    assert (tmp_path / "broker.toml.poolmigrate-backup").read_bytes() == LEGACY.encode("utf-8")


def test_convert_folder_with_earlier_backup_writes_nothing(tmp_path: Path, run_cli, take_snapshot) -> None:
    (tmp_path / "a.toml").write_bytes(OTHER.encode("utf-8"))
    (tmp_path / "b.toml").write_bytes(OTHER.encode("utf-8"))
    (tmp_path / "b.toml.poolmigrate-backup").write_bytes(b"[pool]\nmax_clients_pool = 7\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", tmp_path)

    assert result.exit_code == 1, result.output
    assert "b.toml.poolmigrate-backup already exists" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_convert_reuses_backup_with_same_bytes(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    backup = tmp_path / "broker.toml.poolmigrate-backup"
    backup.write_bytes(LEGACY.encode("utf-8"))

    result = run_cli("convert", path)

    assert result.exit_code == 0, result.output
    assert b"initial_pool_size" in path.read_bytes()
    assert backup.read_bytes() == LEGACY.encode("utf-8")
    assert (tmp_path / "broker.toml.poolmigrate.json").exists()


def test_convert_no_backup_ignores_earlier_backup(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    backup = tmp_path / "broker.toml.poolmigrate-backup"
    backup.write_bytes(OTHER.encode("utf-8"))

    result = run_cli("convert", "--no-backup", path)

    assert result.exit_code == 0, result.output
    assert b"initial_pool_size" in path.read_bytes()
    assert backup.read_bytes() == OTHER.encode("utf-8")


def test_convert_dry_run_reports_earlier_backup(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    (tmp_path / "broker.toml.poolmigrate-backup").write_bytes(OTHER.encode("utf-8"))
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--dry-run", path)

    assert result.exit_code == 1, result.output
    assert "broker.toml.poolmigrate-backup already exists" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_convert_unreadable_backup_is_reported(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    (tmp_path / "broker.toml.poolmigrate-backup").mkdir()
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 2, result.output
    assert "broker.toml.poolmigrate-backup could not be read" in result.stderr
    assert take_snapshot(tmp_path) == before
    assert path.read_bytes() == LEGACY.encode("utf-8")
