"""Each result line reads `STATUS: FILE[:LINE]: sentence` and names its status once."""

from __future__ import annotations

import re
from pathlib import Path

LEGACY = "[pool]\nmax_clients_pool = 100_000\n"
# A status word followed by the path, an optional line number and the sentence.
STATUS_LINE = re.compile(r"^(?P<status>[a-z-]+): (?P<file>[^:]+)(?::\d+)?: (?P<sentence>.+)$")


def _status_lines(output: str) -> list[re.Match[str]]:
    return [match for line in output.splitlines() if (match := STATUS_LINE.match(line))]


def _assert_status_once(output: str, expected_status: str, folder: Path) -> str:
    lines = _status_lines(output)
    assert [line["status"] for line in lines] == [expected_status]
    sentence = lines[0]["sentence"]
    # The folder is left out because pytest names it after the test.
    words = sentence.replace(str(folder), "").lower()
    stem = expected_status.removeprefix("would-")[:6]
    assert stem not in words
    return sentence


def test_converted_line_names_backup(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")

    result = run_cli("convert", path)

    assert result.exit_code == 0, result.output
    sentence = _assert_status_once(result.stdout, "converted", tmp_path)
    assert sentence == f"backup in {path}.poolmigrate-backup."


def test_conflict_line_states_status_once(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "conflict.toml"
    path.write_text("[pool]\nMAX_CLIENTS_POOL = 5\nmax_pool_size = 10\n", encoding="utf-8")

    result = run_cli("convert", path)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"conflict: {path}:2: MAX_CLIENTS_POOL (line 2)")
    _assert_status_once(result.stderr, "conflict", tmp_path)


def test_zig_conflict_line_states_status_once(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "config.zig"
    path.write_text(
        "pub const MAX_CLIENTS_POOL: usize = 5;\npub const INITIAL_POOL_SIZE: usize = 1;\npub const MAX_POOL_SIZE: usize = 10;\n",
        encoding="utf-8",
    )

    result = run_cli("convert", path)

    assert result.exit_code == 1
    _assert_status_once(result.stderr, "conflict", tmp_path)


def test_dry_run_line_states_status_once(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")

    result = run_cli("convert", "--dry-run", path)

    assert result.exit_code == 0, result.output
    _assert_status_once(result.stdout, "would-convert", tmp_path)


def test_rollback_lines_state_status_once(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0

    planned = run_cli("rollback", "--dry-run", path)
    restored = run_cli("rollback", path)

    _assert_status_once(planned.stdout, "would-restore", tmp_path)
    _assert_status_once(restored.stdout, "restored", tmp_path)


def test_edited_file_lines_state_status_once(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(LEGACY, encoding="utf-8")
    assert run_cli("convert", path).exit_code == 0
    path.write_text(path.read_text(encoding="utf-8") + "port = 1884\n", encoding="utf-8")

    refused = run_cli("rollback", path)
    planned = run_cli("rollback", "--force", "--dry-run", path)
    reverted = run_cli("rollback", "--force", path)

    assert refused.exit_code == 1
    _assert_status_once(refused.stderr, "changed", tmp_path)
    _assert_status_once(planned.stdout, "would-revert", tmp_path)
    _assert_status_once(reverted.stdout, "reverted", tmp_path)
