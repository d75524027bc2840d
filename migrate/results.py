"""The outcome of a command for each file, and the exit code they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_INVALID = 1  # a validation failure, a conflict, or --check finding work
EXIT_UNREADABLE = 2  # bad usage or input that cannot be read or parsed


@dataclass(slots=True)
class FileResult:
    """The outcome of a command, done or planned, for one file."""

    path: Path
    kind: str
    status: str
    message: str = ""
    exit_code: int = EXIT_OK
    original_text: str | None = None
    new_text: str | None = None
    original_bytes: bytes | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    backup: Path | None = None
    # Files beside this one that the command removes when it is applied (backup, journal).
    removals: list[Path] = field(default_factory=list)
    # Bytes to write when they are not new_text encoded (a restored backup).
    new_bytes: bytes | None = None
    # Where the current bytes are copied before a rollback rewrites the file in place.
    # `backup` names this copy once it is written.
    rollback_backup: Path | None = None

    @property
    def has_edit(self) -> bool:
        return self.new_bytes is not None or (self.new_text is not None and self.new_text != self.original_text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "changes": self.changes,
            # Only a file that exists now is named; a removed backup is listed under "removed".
            "backup": str(self.backup) if self.backup is not None and self.backup.exists() else None,
            "removed": [] if self.status.startswith("would-") else [str(p) for p in self.removals],
        }


def exit_code(results: list[FileResult]) -> int:
    """Return the highest exit code among the results; 2 outranks 1."""
    return max((r.exit_code for r in results), default=EXIT_OK)
