"""The change summary of convert: real changes only, real line numbers, text as the file writes it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHANGE_LINE = re.compile(r"^  line (\d+): (.*)$", re.M)


def _copy_examples(folder: Path, *names: str) -> list[Path]:
    copies = []
    for name in names:
        target = folder / Path(name).name
        shutil.copyfile(EXAMPLES / name, target)
        copies.append(target)
    return copies


def _json_files(stdout: str) -> dict[str, dict]:
    return {Path(entry["path"]).name: entry for entry in json.loads(stdout)["files"]}


def test_zig_changes_have_real_lines(tmp_path: Path, run_cli) -> None:
    _copy_examples(tmp_path, "zig/config.zig", "zig/main_async.zig")

    result = run_cli("convert", "--dry-run", "--json", tmp_path)

    assert result.exit_code == 0, result.output
    files = _json_files(result.stdout)
    config = files["config.zig"]["changes"]
    assert [(c["line"], c["action"], c["key"]) for c in config] == [
        (15, "replaced", "initial_pool_size"),
        (16, "replaced", "max_pool_size"),
    ]
    assert config[0]["old_text"] == "MAX_CLIENTS_POOL: usize = 100_000"
    assert config[0]["new_text"] == "INITIAL_POOL_SIZE: usize = 1_024"
    references = files["main_async.zig"]["changes"]
    assert [(c["line"], c["old_text"], c["new_text"]) for c in references] == [
        (18, "config.MAX_CLIENTS_POOL", "config.INITIAL_POOL_SIZE"),
        (19, "config.MAX_CLIENTS_POOL", "config.INITIAL_POOL_SIZE"),
    ]


def test_zig_changes_list_only_changed_limits(tmp_path: Path, run_cli) -> None:
    (config,) = _copy_examples(tmp_path, "zig/config.zig")
    original_lines = config.read_text(encoding="utf-8").splitlines()

    result = run_cli("convert", "--json", "--scenario", "small", config)

    assert result.exit_code == 0, result.output
    changes = _json_files(result.stdout)["config.zig"]["changes"]
    assert [(c["line"], c["action"], c["key"]) for c in changes] == [
        (15, "replaced", "initial_pool_size"),
        (16, "replaced", "max_pool_size"),
        (17, "updated", "max_connections"),
    ]
    new_lines = config.read_text(encoding="utf-8").splitlines()
    assert new_lines[16] == "pub const MAX_CONNECTIONS: usize = 10_000;"
    assert changes[2]["old_text"] in original_lines[15]


def test_limit_with_preset_value_is_not_a_change(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    text = "[pool]\nmax_clients_pool = 100\nmax_connections = 1_000_000  # cap\n"
    path.write_text(text, encoding="utf-8")

    result = run_cli("convert", "--dry-run", "--json", path)

    assert result.exit_code == 0, result.output
    changes = _json_files(result.stdout)["broker.toml"]["changes"]
    assert "max_connections" not in {c["key"] for c in changes}
    assert "-max_connections" not in run_cli("convert", "--dry-run", path).stdout


def test_quoted_limit_change_shows_the_quotes(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\nmax_connections = \"1000000\"\n", encoding="utf-8")

    result = run_cli("convert", "--dry-run", path)

    assert result.exit_code == 0, result.output
    assert 'max_connections = "1000000" changed to max_connections = 1000000' in result.stdout


def test_check_json_names_no_unwritten_backup(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "a-legacy.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\n", encoding="utf-8")

    checked = run_cli("convert", "--check", "--json", tmp_path)
    dry = run_cli("convert", "--dry-run", "--json", tmp_path)
    written = run_cli("convert", "--json", tmp_path)

    assert checked.exit_code == 1
    assert _json_files(checked.stdout)["a-legacy.toml"]["backup"] is None
    assert _json_files(dry.stdout)["a-legacy.toml"]["backup"] is None
    assert _json_files(written.stdout)["a-legacy.toml"]["backup"] == str(tmp_path / "a-legacy.toml.poolmigrate-backup")
    assert (tmp_path / "a-legacy.toml.poolmigrate-backup").exists()


def test_no_backup_json_names_no_backup(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "a.toml"
    path.write_text("[pool]\nmax_clients_pool = 100\n", encoding="utf-8")

    result = run_cli("convert", "--no-backup", "--json", path)

    assert _json_files(result.stdout)["a.toml"]["backup"] is None


def test_toml_change_lines_quote_the_file(tmp_path: Path, run_cli) -> None:
    (path,) = _copy_examples(tmp_path, "broker.toml")
    before = path.read_text(encoding="utf-8")

    result = run_cli("convert", path)

    assert result.exit_code == 0, result.output
    after = path.read_text(encoding="utf-8").splitlines()
    printed = CHANGE_LINE.findall(result.stdout)
    assert printed[0] == ("10", "max_clients_pool = 100_000 replaced by initial_pool_size = 1_024")
    assert len(printed) == 4
    for line, description in printed:
        old, _, new = description.partition(" replaced by ")
        if new:
            assert old in before
        else:
            new = description.removesuffix(" added")
        assert new in after[int(line) - 1]


def test_zig_change_lines_quote_the_file(tmp_path: Path, run_cli) -> None:
    config, main = _copy_examples(tmp_path, "zig/config.zig", "zig/main_async.zig")
    before = {p.name: p.read_text(encoding="utf-8") for p in (config, main)}

    result = run_cli("convert", config, main)

    assert result.exit_code == 0, result.output
    printed = CHANGE_LINE.findall(result.stdout)
    assert len(printed) == 4
    after_lines = config.read_text(encoding="utf-8").splitlines() + main.read_text(encoding="utf-8").splitlines()
    for line, description in printed:
        old, _, new = description.partition(" replaced by ")
        assert any(old in text for text in before.values())
        assert any(new in after for after in after_lines)
