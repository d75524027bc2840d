"""The options of `poolmigrate convert`: dry run, check, JSON, presets, flags, backups, folders."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

LEGACY = "# broker\n[pool]\nmax_clients_pool = 100_000\nmax_connections = 20_000\n"
CONVERTED = "[pool]\ninitial_pool_size = 10\nmax_pool_size = 20\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_dry_run_prints_diff_and_writes_nothing(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--dry-run", path)

    assert result.exit_code == 0
    assert f"--- {path}" in result.stdout
    assert "-max_clients_pool = 100_000" in result.stdout
    assert "+initial_pool_size = 1_024" in result.stdout
    assert "would-convert" in result.stdout
    assert take_snapshot(tmp_path) == before


def test_check_exits_1_while_work_remains(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--check", path)

    assert result.exit_code == 1
    assert "would-convert" in result.stdout
    assert take_snapshot(tmp_path) == before


def test_check_exits_0_when_all_converted(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", CONVERTED)
    result = run_cli("convert", "--check", path)
    assert result.exit_code == 0
    assert "already converted" in result.stdout


def test_json_summary_lists_each_file(tmp_path: Path, run_cli) -> None:
    legacy = _write(tmp_path / "a.toml", LEGACY)
    converted = _write(tmp_path / "b.toml", CONVERTED)

    result = run_cli("convert", "--json", legacy, converted)

    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    files = {Path(entry["path"]).name: entry for entry in summary["files"]}
    assert files["a.toml"]["status"] == "converted"
    assert files["a.toml"]["backup"] == str(tmp_path / "a.toml.poolmigrate-backup")
    assert {c["key"] for c in files["a.toml"]["changes"]} == {
        "initial_pool_size", "max_pool_size", "max_connections", "io_entries", "forward_batch_size",
    }
    assert files["b.toml"]["status"] == "unchanged"
    assert files["b.toml"]["backup"] is None
    assert summary["exit_code"] == 0


def test_json_summary_reports_conflict(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "a.toml", "max_clients_pool = 1\ninitial_pool_size = 1\n")
    result = run_cli("convert", "--json", path)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["files"][0]["status"] == "conflict"


def test_json_summary_marks_dry_run_as_would_convert(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "a.toml", LEGACY)
    result = run_cli("convert", "--json", "--dry-run", path)
    assert json.loads(result.stdout)["files"][0]["status"] == "would-convert"
    assert path.read_text(encoding="utf-8") == LEGACY


def test_keep_limits_leaves_limit_keys(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)

    result = run_cli("convert", "--keep-limits", "--scenario", "small", path)

    assert result.exit_code == 0, result.output
    pool = tomllib.loads(path.read_text(encoding="utf-8"))["pool"]
    assert pool == {"initial_pool_size": 512, "max_pool_size": 10_000, "max_connections": 20_000}


def test_small_preset_sets_only_max_connections(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", "[pool]\nmax_clients_pool = 100\nio_entries = 256\n")

    assert run_cli("convert", "--scenario", "small", path).exit_code == 0

    pool = tomllib.loads(path.read_text(encoding="utf-8"))["pool"]
    assert pool == {"initial_pool_size": 512, "max_pool_size": 10_000, "max_connections": 10_000, "io_entries": 256}


def test_flags_override_preset(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)

    result = run_cli("convert", "--scenario", "medium", "--initial-pool-size", "100", "--max-pool-size", "40000", path)

    assert result.exit_code == 0, result.output
    pool = tomllib.loads(path.read_text(encoding="utf-8"))["pool"]
    assert pool["initial_pool_size"] == 100
    assert pool["max_pool_size"] == 40_000
    assert pool["max_connections"] == 50_000


def test_no_backup_writes_no_backup_or_journal(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)
    result = run_cli("convert", "--no-backup", path)
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker.toml"]


def test_backup_and_journal_record_conversion(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)
    path.chmod(0o600)

    assert run_cli("convert", "--scenario", "large", path).exit_code == 0

    backup = tmp_path / "broker.toml.poolmigrate-backup"
    journal = json.loads((tmp_path / "broker.toml.poolmigrate.json").read_text(encoding="utf-8"))
    assert backup.read_text(encoding="utf-8") == LEGACY
    assert backup.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    assert journal["scenario"] == "large"
    assert journal["values"]["initial_pool_size"] == 10_000
    assert len(journal["sha256_before"]) == 64
    assert journal["sha256_after"] != journal["sha256_before"]
    assert journal["tool_version"]
    assert journal["converted_at"]


def test_convert_leaves_converted_file_untouched(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "broker.toml", LEGACY)
    assert run_cli("convert", path).exit_code == 0
    after_first = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 0
    assert "already converted" in result.stdout
    assert take_snapshot(tmp_path) == after_first


def test_folder_convert_skips_unrelated_and_backup_files(tmp_path: Path, run_cli) -> None:
    _write(tmp_path / "broker.toml", LEGACY)
    _write(tmp_path / "sites" / "edge.toml", "pool.max_clients_pool = 500\n")
    _write(tmp_path / "sites" / "done.toml", CONVERTED)
    _write(tmp_path / "Cargo.toml", "[package]\nname = \"x\"\n")
    _write(tmp_path / "notes.txt", "max_clients_pool = 5\n")
    _write(tmp_path / ".hidden" / "old.toml", LEGACY)

    first = run_cli("convert", "--json", tmp_path)
    second = run_cli("convert", "--json", tmp_path)

    assert first.exit_code == 0, first.output
    statuses = {Path(e["path"]).relative_to(tmp_path).as_posix(): e["status"] for e in json.loads(first.stdout)["files"]}
    assert statuses == {"broker.toml": "converted", "sites/done.toml": "unchanged", "sites/edge.toml": "converted"}
    again = {Path(e["path"]).relative_to(tmp_path).as_posix(): e["status"] for e in json.loads(second.stdout)["files"]}
    assert again == {"broker.toml": "unchanged", "sites/done.toml": "unchanged", "sites/edge.toml": "unchanged"}
    assert (tmp_path / "Cargo.toml").read_text(encoding="utf-8") == "[package]\nname = \"x\"\n"
    assert (tmp_path / ".hidden" / "old.toml").read_text(encoding="utf-8") == LEGACY


def test_folder_convert_rewrites_zig_sources(tmp_path: Path, run_cli) -> None:
    _write(tmp_path / "broker.toml", LEGACY)
    config = _write(
        tmp_path / "src" / "config.zig",
        "// Broker settings.\npub const MAX_CLIENTS_POOL: usize = 100_000; // preallocated clients\n"
        "pub const IO_ENTRIES: u12 = 4095;\n",
    )
    main = _write(
        tmp_path / "src" / "main_async.zig",
        "const std = @import(\"std\");\nconst config = @import(\"config.zig\");\n\n"
        "pub fn start(pool: anytype) !void {\n    try pool.preheat(config.MAX_CLIENTS_POOL);\n"
        "    std.log.info(\"preheated {d} clients\", .{config.MAX_CLIENTS_POOL});\n}\n",
    )
    originals = {p: p.read_bytes() for p in (tmp_path / "broker.toml", config, main)}

    result = run_cli("convert", tmp_path)

    assert result.exit_code == 0, result.output
    config_text = config.read_text(encoding="utf-8")
    assert "pub const INITIAL_POOL_SIZE: usize = 1_024;" in config_text
    assert "pub const MAX_POOL_SIZE: usize = 100_000;" in config_text
    assert "MAX_CLIENTS_POOL" not in config_text
    main_text = main.read_text(encoding="utf-8")
    assert "preheat(config.INITIAL_POOL_SIZE)" in main_text
    assert "config.MAX_CLIENTS_POOL" not in main_text

    rollback = run_cli("rollback", tmp_path)

    assert rollback.exit_code == 0, rollback.output
    assert {p: p.read_bytes() for p in originals} == originals
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["config.zig", "main_async.zig"]


def test_convert_by_module_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _write(tmp_path / "broker.toml", LEGACY)
    completed = subprocess.run(
        [sys.executable, "-m", "migrate", "convert", "--check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 1
    assert "would-convert" in completed.stdout


def test_presets_lists_every_preset(run_cli) -> None:
    result = run_cli("presets", "--json")
    assert result.exit_code == 0
    presets = {p["name"]: p for p in json.loads(result.stdout)}
    assert list(presets) == ["default", "small", "medium", "large"]
    assert presets["small"]["values"]["max_pool_size"] == 10_000
    assert presets["default"]["targets"][0]["label"] == "startup"


def test_presets_table_names_every_preset(run_cli) -> None:
    result = run_cli("presets")
    assert result.exit_code == 0
    for name in ("default", "small", "medium", "large"):
        assert name in result.stdout


def test_bundled_examples_convert_and_roll_back(tmp_path: Path, run_cli) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for source in sorted(examples.glob("*.toml")):
        path = tmp_path / source.name
        path.write_bytes(source.read_bytes())
        converted = run_cli("convert", path)
        assert converted.exit_code == 0, converted.output
        assert "converted" in converted.stdout
        rolled_back = run_cli("rollback", path)
        assert rolled_back.exit_code == 0, rolled_back.output
        assert path.read_bytes() == source.read_bytes()
