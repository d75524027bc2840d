"""Fixtures for the poolmigrate command-line tests: an in-process runner and folder snapshots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migrate.cli import app


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """Run `poolmigrate ARGS...` in-process and return its exit code, stdout and stderr."""
    runner = CliRunner()

    def run(*args: object) -> CliResult:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Return every file under `folder` with its bytes and mode, keyed by relative path."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mode & 0o7777)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def take_snapshot() -> Callable[[Path], dict[str, tuple[bytes, int]]]:
    return snapshot
