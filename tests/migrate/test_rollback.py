"""`poolmigrate rollback`: exact restore, refusal after edits, --force, and no backup."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

LEGACY = "# broker\r\n[pool]\r\nmax_clients_pool = 50_000  # preallocated\r\nport = 1883"


def _converted(tmp_path: Path, run_cli, *flags: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    result = run_cli("convert", *flags, path)
    assert result.exit_code == 0, result.output
    return path


def test_rollback_restores_original_bytes(tmp_path: Path, run_cli) -> None:
    path = _converted(tmp_path, run_cli)
    result = run_cli("rollback", path)
    assert result.exit_code == 0
    assert "restored" in result.stdout
    assert path.read_bytes() == LEGACY.encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["broker.toml"]


def test_rollback_rejects_file_edited_after_convert(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _converted(tmp_path, run_cli)
    path.write_bytes(path.read_bytes() + b"\r\nhost = \"0.0.0.0\"\r\n")
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", path)

    assert result.exit_code == 1
    assert "edited since it was converted" in result.stderr
    assert "line 9 differs from what the conversion wrote" in result.stderr
    assert "--force" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_rollback_force_keeps_later_edits(tmp_path: Path, run_cli) -> None:
    path = _converted(tmp_path, run_cli)
    text = path.read_bytes().decode("utf-8").replace("port = 1883", "port = 1884\r\ngrowth_factor = 2.0")
    path.write_bytes(text.encode("utf-8"))

    result = run_cli("rollback", "--force", path)

    assert result.exit_code == 0, result.output
    reverted = path.read_bytes().decode("utf-8")
    document = tomllib.loads(reverted)
    assert document["pool"]["max_clients_pool"] == 50_000
    assert document["pool"]["port"] == 1884
    assert "initial_pool_size" not in document["pool"]
    assert "max_pool_size" not in document["pool"]
    assert "growth_factor" not in document["pool"]
    assert "max_connections" not in document["pool"]
    assert "max_clients_pool = 50_000  # preallocated\r\n" in reverted
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broker.toml",
        "broker.toml.poolmigrate-backup",
        "broker.toml.poolmigrate-rollback-backup",
    ]


def test_rollback_without_backup_reverses_in_place(tmp_path: Path, run_cli) -> None:
    path = _converted(tmp_path, run_cli, "--no-backup", "--scenario", "small")

    result = run_cli("rollback", path)

    assert result.exit_code == 0, result.output
    assert "reverted" in result.stdout
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("# broker\r\n[pool]\r\nmax_clients_pool = 10_000  # preallocated\r\n")
    assert tomllib.loads(text)["pool"] == {"max_clients_pool": 10_000, "max_connections": 10_000, "port": 1883}
    assert not text.endswith("\n")


def test_rollback_removes_expansion_keys(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(
        "[pool]\ninitial_pool_size = 64\nmax_pool_size = 512\nexpansion_threshold_percent = 70\ngrowth_factor = 2.0\n",
        encoding="utf-8",
    )
    result = run_cli("rollback", path)
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == "[pool]\nmax_clients_pool = 512\n"


def test_rollback_dry_run_writes_nothing(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _converted(tmp_path, run_cli)
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", "--dry-run", path)

    assert result.exit_code == 0
    assert "would-restore" in result.stdout
    assert "+max_clients_pool = 50_000  # preallocated" in result.stdout
    assert take_snapshot(tmp_path) == before


def test_rollback_of_legacy_file_does_nothing(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_bytes(LEGACY.encode("utf-8"))
    result = run_cli("rollback", path)
    assert result.exit_code == 0
    assert "nothing to roll back" in result.stdout
    assert path.read_bytes() == LEGACY.encode("utf-8")


def test_rollback_rejects_damaged_journal(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _converted(tmp_path, run_cli)
    (tmp_path / "broker.toml.poolmigrate.json").write_text("{not json", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", path)

    assert result.exit_code == 2
    assert "is not a poolmigrate journal" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_rollback_of_folder_restores_every_file(tmp_path: Path, run_cli) -> None:
    (tmp_path / "a").mkdir()
    files = {
        tmp_path / "a" / "one.toml": b"max_clients_pool = 1\n",
        tmp_path / "two.toml": b"[pool]\r\nMAX_CLIENTS_POOL = 2\r\n",
    }
    for path, data in files.items():
        path.write_bytes(data)
    assert run_cli("convert", tmp_path).exit_code == 0

    result = run_cli("rollback", "--json", tmp_path)

    assert result.exit_code == 0, result.output
    assert {e["status"] for e in json.loads(result.stdout)["files"]} == {"restored"}
    assert {p: p.read_bytes() for p in files} == files
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "one.toml", "two.toml"]


def test_folder_rollback_skips_file_without_journal(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "converted.toml"
    path.write_text("[pool]\ninitial_pool_size = 10\nmax_pool_size = 100\nmax_connections = 1000\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", tmp_path)

    assert result.exit_code == 0, result.output
    assert f"skipped: {path}: no conversion journal; name the file to reverse it in place" in result.stdout
    assert take_snapshot(tmp_path) == before


def test_folder_rollback_restores_journaled_and_skips_others(tmp_path: Path, run_cli) -> None:
    journaled = tmp_path / "a.toml"
    journaled.write_bytes(b"max_clients_pool = 1\n")
    assert run_cli("convert", journaled).exit_code == 0
    by_hand = tmp_path / "b.toml"
    by_hand_text = b"initial_pool_size = 10\nmax_pool_size = 100\n"
    by_hand.write_bytes(by_hand_text)

    result = run_cli("rollback", "--json", tmp_path)

    assert result.exit_code == 0, result.output
    statuses = {Path(e["path"]).name: e["status"] for e in json.loads(result.stdout)["files"]}
    assert statuses == {"a.toml": "restored", "b.toml": "skipped"}
    assert journaled.read_bytes() == b"max_clients_pool = 1\n"
    assert by_hand.read_bytes() == by_hand_text


def test_named_file_reversal_keeps_previous_bytes(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "converted.toml"
    original = b"[pool]\ninitial_pool_size = 10\nmax_pool_size = 100\nmax_connections = 1000\n"
    path.write_bytes(original)

    result = run_cli("rollback", "--json", path)

    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["files"][0]
    kept = tmp_path / "converted.toml.poolmigrate-rollback-backup"
    assert entry["status"] == "reverted"
    assert entry["backup"] == str(kept)
    assert str(kept) in entry["message"]
    assert kept.read_bytes() == original
    assert tomllib.loads(path.read_text(encoding="utf-8"))["pool"] == {"max_clients_pool": 100, "max_connections": 1000}


def test_reversal_rejects_overwriting_earlier_rollback_backup(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "converted.toml"
    path.write_text("initial_pool_size = 10\nmax_pool_size = 100\n", encoding="utf-8")
    (tmp_path / "converted.toml.poolmigrate-rollback-backup").write_text("older bytes\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", path)

    assert result.exit_code == 1
    assert "converted.toml.poolmigrate-rollback-backup, which holds other bytes" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_rollback_dry_run_writes_no_rollback_backup(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "converted.toml"
    path.write_text("initial_pool_size = 10\nmax_pool_size = 100\n", encoding="utf-8")
    before = take_snapshot(tmp_path)

    result = run_cli("rollback", "--dry-run", path)

    assert result.exit_code == 0, result.output
    assert "would-revert" in result.stdout
    assert take_snapshot(tmp_path) == before


EXAMPLE = """host = "127.0.0.1"
port = 1883

[pool]
max_clients_pool = 100_000
io_entries = 4095
"""


def _edited_after_convert(tmp_path: Path, run_cli, *flags: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert run_cli("convert", *flags, path).exit_code == 0
    path.write_text(path.read_text(encoding="utf-8").replace("port = 1883", "port = 1884"), encoding="utf-8")
    return path


def test_force_rollback_restores_original_legacy_value(tmp_path: Path, run_cli) -> None:
    path = _edited_after_convert(tmp_path, run_cli, "--scenario", "small")

    result = run_cli("rollback", "--force", path)

    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EXAMPLE.replace("port = 1883", "port = 1884")
    assert "line 5: max_clients_pool = 100_000 restored" in result.stdout
    assert "max_connections = 10_000 removed" in result.stdout


def test_force_rollback_keeps_original_backup(tmp_path: Path, run_cli) -> None:
    path = _edited_after_convert(tmp_path, run_cli, "--scenario", "small")

    result = run_cli("rollback", "--force", path)

    backup = tmp_path / "broker.toml.poolmigrate-backup"
    assert result.exit_code == 0, result.output
    assert backup.read_text(encoding="utf-8") == EXAMPLE
    assert f"the original bytes stay in {backup}" in result.stdout
    assert not (tmp_path / "broker.toml.poolmigrate.json").exists()


def test_force_rollback_restores_updated_limit(tmp_path: Path, run_cli) -> None:
    path = _edited_after_convert(tmp_path, run_cli)
    converted = tomllib.loads(path.read_text(encoding="utf-8"))["pool"]
    assert converted["io_entries"] == 4095
    path.write_text(path.read_text(encoding="utf-8").replace("io_entries = 4095", "io_entries = 1023"), encoding="utf-8")

    result = run_cli("rollback", "--force", path)

    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EXAMPLE.replace("port = 1883", "port = 1884")
    assert "io_entries = 4095 restored" in result.stdout


def test_force_rollback_reads_old_journal_from_backup(tmp_path: Path, run_cli) -> None:
    path = _edited_after_convert(tmp_path, run_cli, "--scenario", "small")
    journal = tmp_path / "broker.toml.poolmigrate.json"
    recorded = json.loads(journal.read_text(encoding="utf-8"))
    del recorded["originals"]
    journal.write_text(json.dumps(recorded), encoding="utf-8")

    result = run_cli("rollback", "--force", path)

    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EXAMPLE.replace("port = 1883", "port = 1884")


def test_reversal_without_journal_says_set(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "converted.toml"
    path.write_text("[pool]\ninitial_pool_size = 10\nmax_pool_size = 100\n", encoding="utf-8")

    result = run_cli("rollback", path)

    assert result.exit_code == 0, result.output
    assert "line 2: max_clients_pool = 100 set" in result.stdout
    assert "restored" not in result.stdout


def test_rollback_json_names_only_existing_files(tmp_path: Path, run_cli) -> None:
    path = _converted(tmp_path, run_cli)

    result = run_cli("rollback", "--json", path)

    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["files"][0]
    assert entry["status"] == "restored"
    assert entry["backup"] is None
    assert sorted(Path(p).name for p in entry["removed"]) == ["broker.toml.poolmigrate-backup", "broker.toml.poolmigrate.json"]


def test_rollback_dry_run_json_removes_nothing(tmp_path: Path, run_cli) -> None:
    path = _converted(tmp_path, run_cli)

    result = run_cli("rollback", "--dry-run", "--json", path)

    entry = json.loads(result.stdout)["files"][0]
    assert entry["backup"] == str(tmp_path / "broker.toml.poolmigrate-backup")
    assert entry["removed"] == []
