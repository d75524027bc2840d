"""`poolmigrate rollback --force` of a converted Zig broker puts back the values it had before conversion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "zig"
UNRELATED_LINE = "pub const LISTEN_PORT: u16 = 1883; // MQTT 标准端口"
EDITED_LINE = "pub const LISTEN_PORT: u16 = 1884; // MQTT 标准端口"
# ast-check of one file took well under a second here; the limit only stops a hung process.
AST_CHECK_TIMEOUT_S = 60

NO_LIMITS = """const std = @import("std");

pub const LISTEN_PORT: u16 = 1883;
pub const MAX_CLIENTS_POOL: usize = 0x1_86A0; // preallocated clients
"""


def _converted_example(tmp_path: Path, run_cli) -> Path:
    folder = tmp_path / "zig"
    shutil.copytree(EXAMPLES, folder)
    result = run_cli("convert", "--scenario", "small", folder)
    assert result.exit_code == 0, result.output
    return folder


def _edit_unrelated_line(config: Path) -> None:
    text = config.read_bytes().decode("utf-8")
    assert UNRELATED_LINE in text
    config.write_bytes(text.replace(UNRELATED_LINE, EDITED_LINE).encode("utf-8"))


def _ast_check(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ziglang", "ast-check", path.name],
        cwd=path.parent,
        env={**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(cache / "global"), "ZIG_LOCAL_CACHE_DIR": str(cache / "local")},
        capture_output=True,
        text=True,
        timeout=AST_CHECK_TIMEOUT_S,
        check=False,
    )


def test_force_rollback_restores_example_config(tmp_path: Path, run_cli) -> None:
    folder = _converted_example(tmp_path, run_cli)
    config = folder / "config.zig"
    converted = config.read_bytes().decode("utf-8")
    assert "pub const MAX_CONNECTIONS: usize = 10_000;" in converted
    _edit_unrelated_line(config)

    result = run_cli("rollback", "--force", folder)

    assert result.exit_code == 0, result.output
    original = (EXAMPLES / "config.zig").read_bytes().decode("utf-8")
    assert config.read_bytes().decode("utf-8") == original.replace(UNRELATED_LINE, EDITED_LINE)
    assert "line 15: MAX_CLIENTS_POOL: usize = 100_000 restored" in result.stdout
    assert "MAX_CONNECTIONS: usize = 1_000_000 restored" in result.stdout
    assert (folder / "main_async.zig").read_bytes() == (EXAMPLES / "main_async.zig").read_bytes()
    main = (folder / "main_async.zig").read_text(encoding="utf-8")
    assert "preheat(config.MAX_CLIENTS_POOL)" in main


def test_force_rolled_back_example_passes_ast_check(tmp_path: Path, run_cli) -> None:
    folder = _converted_example(tmp_path, run_cli)
    _edit_unrelated_line(folder / "config.zig")
    assert run_cli("rollback", "--force", folder).exit_code == 0

    for name in ("config.zig", "main_async.zig"):
        check = _ast_check(folder / name, tmp_path / "zig-cache")
        assert check.returncode == 0, f"zig ast-check {name} failed:\n{check.stderr}"


def test_force_rollback_removes_added_limits(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "config.zig"
    config.write_bytes(NO_LIMITS.encode("utf-8"))
    assert run_cli("convert", config).exit_code == 0
    converted = config.read_text(encoding="utf-8")
    assert "IO_ENTRIES" in converted
    config.write_text(converted.replace("1883", "1884"), encoding="utf-8")

    result = run_cli("rollback", "--force", config)

    assert result.exit_code == 0, result.output
    assert config.read_text(encoding="utf-8") == NO_LIMITS.replace("1883", "1884")
    assert "IO_ENTRIES" in result.stdout
    assert "removed" in result.stdout


@pytest.mark.parametrize("journal_change", ["missing", "damaged"])
def test_force_rollback_reads_originals_from_backup(tmp_path: Path, run_cli, journal_change: str) -> None:
    folder = _converted_example(tmp_path, run_cli)
    config = folder / "config.zig"
    journal = folder / "config.zig.poolmigrate.json"
    recorded = json.loads(journal.read_text(encoding="utf-8"))
    assert recorded["originals"]["legacy"] == {"value": 100000, "text": "100_000"}
    if journal_change == "missing":
        del recorded["originals"]
    else:
        recorded["originals"] = {"legacy": None}
    journal.write_text(json.dumps(recorded), encoding="utf-8")
    _edit_unrelated_line(config)

    result = run_cli("rollback", "--force", config)

    assert result.exit_code == 0, result.output
    original = (EXAMPLES / "config.zig").read_bytes().decode("utf-8")
    assert config.read_bytes().decode("utf-8") == original.replace(UNRELATED_LINE, EDITED_LINE)


def test_force_rollback_with_changed_backup(tmp_path: Path, run_cli) -> None:
    folder = _converted_example(tmp_path, run_cli)
    config = folder / "config.zig"
    journal = folder / "config.zig.poolmigrate.json"
    recorded = json.loads(journal.read_text(encoding="utf-8"))
    del recorded["originals"]
    journal.write_text(json.dumps(recorded), encoding="utf-8")
    backup = folder / "config.zig.poolmigrate-backup"
    backup.write_bytes(backup.read_bytes() + b"\n")
    _edit_unrelated_line(config)

    result = run_cli("rollback", "--force", config)

    assert result.exit_code == 0, result.output
    reverted = config.read_text(encoding="utf-8")
    assert "pub const MAX_CLIENTS_POOL: usize = 10_000;" in reverted
    assert "pub const MAX_CONNECTIONS: usize = 10_000;" in reverted
    assert "MAX_CLIENTS_POOL: usize = 10_000 set" in result.stdout
    assert "restored" not in result.stdout.replace("MAX_CLIENTS_POOL is back", "")


def test_zig_reversal_without_journal_says_set(tmp_path: Path, run_cli) -> None:
    config = tmp_path / "config.zig"
    config.write_text("pub const INITIAL_POOL_SIZE: usize = 10;\npub const MAX_POOL_SIZE: usize = 100;\n", encoding="utf-8")

    result = run_cli("rollback", config)

    assert result.exit_code == 0, result.output
    assert config.read_text(encoding="utf-8") == "pub const MAX_CLIENTS_POOL: usize = 100;\n"
    assert "line 1: MAX_CLIENTS_POOL: usize = 100 set" in result.stdout
