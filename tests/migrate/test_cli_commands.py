"""`poolmigrate presets` and `poolmigrate serve` as a user runs them: piped output and a real broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import migrate
import scenarios
from broker.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
# The folder the imported migrate package sits in, so the subprocess runs the same code.
MIGRATE_ROOT = Path(migrate.__file__).resolve().parents[1]
# Seconds the broker may take to write its ready file, and to exit after SIGINT.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# Seconds between checks for the ready file while the broker starts.
POLL_INTERVAL = 0.05


def _environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(MIGRATE_ROOT), str(ROOT), environment.get("PYTHONPATH", "")])
    environment.update(extra)
    return environment


def test_presets_piped_fit_80_columns() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "migrate", "presets"],
        capture_output=True, text=True, timeout=60, env=_environment(COLUMNS="80"),
    )

    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "…" not in output
    assert max(len(line) for line in output.splitlines()) <= 80
    for preset in scenarios.load_all():
        assert preset.name in output
        for value in preset.values.values():
            assert f"{value:,}" in output
        for target in preset.targets:
            assert target.label in output
            assert f"{target.max_mb:g} MB" in output


def _help_lines(command: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "migrate", command, "--help"],
        capture_output=True, text=True, timeout=60, env=_environment(COLUMNS="80"),
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def _option_line(lines: list[str], option: str) -> str:
    return next(line for line in lines if line.lstrip("│ ").startswith(option + " "))


def test_convert_help_shows_scenario_choices() -> None:
    lines = _help_lines("convert")
    text = " ".join(line.strip("│ ") for line in lines)

    assert "--scenario" in _option_line(lines, "--scenario")
    assert " NAME " in _option_line(lines, "--scenario")
    assert "<default|" not in text
    assert "one of default, small, medium, large." in text
    assert max(len(line) for line in lines) <= 80


def test_command_help_shows_no_bool_metavar() -> None:
    flags = {
        "convert": ["--keep-limits", "--dry-run", "--check", "--json", "--no-backup"],
        "rollback": ["--force", "--dry-run", "--json"],
        "presets": ["--json"],
    }
    for command, names in flags.items():
        lines = _help_lines(command)
        for name in names:
            assert "<bool>" not in _option_line(lines, name), (command, name)


def test_serve_help_lists_every_broker_option(run_cli) -> None:
    broker_options = [
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]

    result = run_cli("serve", "--help")

    assert result.exit_code == 0
    assert broker_options
    for option in broker_options:
        assert option in result.stdout, option


def test_serve_rejects_unknown_log_level(run_cli) -> None:
    result = run_cli("serve", "--log-level", "LOUD")
    assert result.exit_code == 2
    assert "LOUD" in result.output


def _wait_for_ready_file(process: subprocess.Popen[bytes], ready: Path, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.exists():
        assert process.poll() is None, f"serve exited with {process.returncode}: {log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"serve wrote no {ready} within {START_TIMEOUT} s: {log.read_text(errors='replace')}"
        try:
            process.wait(timeout=POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass
    return json.loads(ready.read_text(encoding="utf-8"))


def test_serve_runs_broker_until_sigint(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "migrate", "serve", "--port", "0", "--ready-file", str(ready), "--log-level", "warning"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=_environment())
        try:
            info = _wait_for_ready_file(process, ready, log)
            with socket.create_connection(("127.0.0.1", info["port"]), timeout=5):
                pass
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=STOP_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)

    assert info["pid"] == process.pid
    assert code == 0, log.read_text(errors="replace")
    # WARNING hides the INFO lines the broker logs at startup.
    assert " INFO " not in log.read_text(errors="replace")
