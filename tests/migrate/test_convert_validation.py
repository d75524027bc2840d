"""Validation before convert writes: one unit per broker, the line to blame, and fixes that really work."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LEGACY = "# broker\n[pool]\nmax_clients_pool = 100_000\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _fixes(message: str) -> list[list[str]]:
    """Return each suggested fix of an error message as a list of command-line edits."""
    match = re.search(r"To fix it, (.*?)\. Nothing was written\.", message)
    assert match, message
    fixes = []
    for part in match.group(1).split(" or "):
        part = part.removeprefix("use ")
        fixes.append(part.split())
    return fixes


def _apply_fix(args: list[str], fix: list[str]) -> list[str]:
    """Apply one suggested fix ("--flag N ...", "leave out --flag", "run without --flag") to the arguments."""
    args = list(args)
    if fix[:2] == ["leave", "out"] or fix[:2] == ["run", "without"]:
        flag = fix[2]
        index = args.index(flag)
        takes_value = flag != "--keep-limits"
        del args[index : index + (2 if takes_value else 1)]
        return args
    for flag, value in zip(fix[::2], fix[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args[:0] = [flag, value]
    return args


def test_fleet_element_validated_on_its_own(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = tmp_path / "fleet.toml"
    shutil.copyfile(EXAMPLES / "fleet.toml", path)
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--dry-run", "--keep-limits", path)

    assert result.exit_code == 1
    # Line 13 is edge-paris's max_connections; edge-berlin (line 7) has none and is valid.
    assert f"{path}:13: MAX_CONNECTIONS is 20000 but MAX_POOL_SIZE would be 100000" in result.stderr
    assert f"{path}:7:" not in result.stderr
    assert take_snapshot(tmp_path) == before


def test_fleet_element_does_not_borrow_sibling_limits(tmp_path: Path, run_cli) -> None:
    path = _write(
        tmp_path / "fleet.toml",
        "[[brokers]]\nname = \"a\"\npool.max_clients_pool = 10\npool.max_connections = 5000\n\n"
        "[[brokers]]\nname = \"b\"\npool.max_clients_pool = 20\n",
    )

    result = run_cli("convert", "--keep-limits", "--scenario", "small", "--max-pool-size", "5000", path)

    assert result.exit_code == 0, result.output
    assert "pool.max_connections = 5000\n" in path.read_text(encoding="utf-8")


def test_fleet_element_falls_back_to_enclosing_level(tmp_path: Path, run_cli) -> None:
    path = _write(
        tmp_path / "fleet.toml",
        "max_connections = 20_000\n\n[[brokers]]\nname = \"a\"\nmax_clients_pool = 10\n",
    )

    result = run_cli("convert", "--dry-run", "--keep-limits", path)

    assert result.exit_code == 1
    assert f"{path}:1: MAX_CONNECTIONS is 20000" in result.stderr


def test_limits_table_beside_pool_table_is_one_broker(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", "[pool]\nmax_clients_pool = 100\n\n[limits]\nmax_connections = 10000\n")

    result = run_cli("convert", "--dry-run", "--keep-limits", path)

    assert result.exit_code == 1
    assert f"{path}:5: MAX_CONNECTIONS is 10000" in result.stderr


def test_quoted_limit_points_at_its_line(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "lim.toml", "[pool]\nmax_clients_pool = 100\nmax_connections = \"1000000\"\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--keep-limits", path)

    assert result.exit_code == 1
    assert f"{path}:3: MAX_CONNECTIONS must be an integer, not '1000000'." in result.stderr
    assert "To fix it, write it without quotes: max_connections = 1000000. Nothing was written." in result.stderr
    assert take_snapshot(tmp_path) == before


def test_flag_error_blames_flag(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "o.toml", LEGACY)

    result = run_cli("convert", "--max-pool-size", "5", path)

    assert result.exit_code == 1
    assert f"{path}:3: --max-pool-size 5 is invalid: INITIAL_POOL_SIZE is 1024 but MAX_POOL_SIZE is only 5" in result.stderr
    assert "To fix it, use --max-pool-size 1024 or leave out --max-pool-size." in result.stderr
    assert "--scenario" not in result.stderr
    assert "--initial-pool-size 5" not in result.stderr


FAILING_RUNS = {
    "zero initial flag": (LEGACY, ["--initial-pool-size", "0"]),
    "tiny max flag": (LEGACY, ["--max-pool-size", "5"]),
    "flags crossed": (LEGACY, ["--initial-pool-size", "5000", "--max-pool-size", "2000"]),
    "file cap below preset": ("[pool]\nmax_clients_pool = 1\nmax_connections = 20_000\n", ["--keep-limits"]),
    "file cap below flag": ("[pool]\nmax_clients_pool = 1\nmax_connections = 600\n", ["--keep-limits", "--scenario", "small"]),
    "io entries above u12": ("[pool]\nmax_clients_pool = 1\nio_entries = 8192\n", ["--scenario", "small"]),
    "max flag above cap": ("[pool]\nmax_clients_pool = 1\nmax_connections = 3000\n", ["--keep-limits", "--max-pool-size", "4000"]),
}


@pytest.mark.parametrize(("text", "args"), FAILING_RUNS.values(), ids=FAILING_RUNS.keys())
def test_every_suggested_fix_converts(text: str, args: list[str], tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path / "broker.toml", text)

    failed = run_cli("convert", "--dry-run", *args, path)

    assert failed.exit_code == 1
    fixes = _fixes(failed.stderr)
    assert 1 <= len(fixes) <= 2
    for fix in fixes:
        fixed = run_cli("convert", "--dry-run", *_apply_fix(args, fix), path)
        assert fixed.exit_code == 0, f"{fix}: {fixed.output}"


@pytest.mark.parametrize(
    ("line", "problem", "fix"),
    [
        ('max_clients_pool = "100000"', "MAX_CLIENTS_POOL must be an integer, not '100000'.", "write it without quotes: max_clients_pool = 100000"),
        ("max_clients_pool = -5", "MAX_CLIENTS_POOL is -5 but must be at least 1.", "write a whole number of at least 1"),
        ("max_clients_pool = 0", "MAX_CLIENTS_POOL is 0 but must be at least 1.", "write a whole number of at least 1"),
        ("max_clients_pool = 1e5", "MAX_CLIENTS_POOL must be an integer, not 100000.0.", "write it as an integer: max_clients_pool = 100000"),
    ],
)
def test_convert_rejects_legacy_value_serve_rejects(line: str, problem: str, fix: str, tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "broker.toml", f"# broker\n[pool]\n{line}\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 1
    assert f"{path}:3: {problem} To fix it, {fix}" in result.stderr
    assert take_snapshot(tmp_path) == before


def test_convert_rejects_zig_legacy_zero(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "config.zig", "// pool\npub const MAX_CLIENTS_POOL: usize = 0;\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", path)

    assert result.exit_code == 1
    assert f"{path}:2: MAX_CLIENTS_POOL is 0 but must be at least 1." in result.stderr
    assert take_snapshot(tmp_path) == before


def test_zig_negative_flag_rejected(tmp_path: Path, run_cli, take_snapshot) -> None:
    path = _write(tmp_path / "config.zig", "// pool\npub const MAX_CLIENTS_POOL: usize = 100_000;\n")
    before = take_snapshot(tmp_path)

    result = run_cli("convert", "--initial-pool-size", "-1", path)

    assert result.exit_code == 1
    assert f"{path}:2: --initial-pool-size -1 is invalid: INITIAL_POOL_SIZE must be at least 1." in result.stderr
    assert take_snapshot(tmp_path) == before
