"""The backup and the journal that a conversion leaves beside each file it rewrites.

`broker.toml` gets `broker.toml.poolmigrate-backup` (the exact original bytes, same
mode) and `broker.toml.poolmigrate.json`, which records the SHA-256 of the file before
and after the conversion, the values applied, the time and the tool version. Rollback
uses the hashes to tell whether the file was edited after the conversion.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from migrate.files import InputError

BACKUP_SUFFIX = ".poolmigrate-backup"
JOURNAL_SUFFIX = ".poolmigrate.json"
# Copy of the bytes a rollback overwrites when it reverses a conversion in place.
ROLLBACK_BACKUP_SUFFIX = ".poolmigrate-rollback-backup"
# Journals with another format number are not read, so a future layout cannot be misread.
JOURNAL_FORMAT = 1


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + JOURNAL_SUFFIX)


def rollback_backup_path(path: Path) -> Path:
    return path.with_name(path.name + ROLLBACK_BACKUP_SUFFIX)


def tool_version() -> str:
    try:
        return metadata.version("poolmigrate")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(slots=True)
class Journal:
    """The record of one conversion of one file."""

    file: str
    kind: str
    sha256_before: str
    sha256_after: str
    scenario: str
    values: dict[str, int]
    keep_limits: bool
    converted_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tool_version: str = field(default_factory=tool_version)
    backup: str | None = None
    format: int = JOURNAL_FORMAT
    # The legacy and limit values before conversion, as TomlOriginals.to_json (TOML) or
    # ZigOriginals.to_json (config.zig) writes them. None in journals written before they
    # were recorded, and for Zig files that only reference the config.
    originals: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_journal(path: Path) -> Journal | None:
    """Read the journal beside `path`; None when there is none, InputError when it is damaged."""
    location = journal_path(path)
    try:
        raw = location.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InputError(f"{location}: could not be read ({error.strerror or error}).") from None
    try:
        data: dict[str, Any] = json.loads(raw.decode("utf-8"))
        if data.get("format") != JOURNAL_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {JOURNAL_FORMAT}")
        return Journal(**data)
    except (ValueError, TypeError) as error:
        raise InputError(
            f"{location}: is not a poolmigrate journal ({error}). "
            f"Delete it to roll back without the backup, or restore {backup_path(path)} by hand."
        ) from None
