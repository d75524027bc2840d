"""Apply the writes and removals of one command to several files, all or none."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from migrate.files import atomic_write


class WriteError(Exception):
    """A write failed; every file touched before it was put back."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class _Operation:
    path: Path
    data: bytes | None
    mode: int | None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    path: Path
    data: bytes | None
    mode: int | None


class FileTransaction:
    """Collect file writes and removals, then apply them in order or undo the ones applied."""

    def __init__(self) -> None:
        self._operations: list[_Operation] = []

    def write(self, path: Path, data: bytes, mode: int | None = None) -> None:
        self._operations.append(_Operation(path, data, mode))

    def remove(self, path: Path) -> None:
        self._operations.append(_Operation(path, None, None))

    def __len__(self) -> int:
        return len(self._operations)

    def commit(self) -> None:
        """Apply every operation; on the first failure undo the applied ones and raise WriteError."""
        for folder in sorted({op.path.resolve().parent for op in self._operations}):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise WriteError(folder, f"{folder}: the folder is not writable, so nothing was written. Check its permissions.")

        applied: list[_Snapshot] = []
        try:
            for operation in self._operations:
                snapshot = _snapshot(operation.path)
                if operation.data is None:
                    if snapshot.data is not None:
                        operation.path.unlink()
                else:
                    atomic_write(operation.path, operation.data, operation.mode)
                applied.append(snapshot)
        except OSError as error:
            _undo(applied)
            raise WriteError(
                operation.path, f"{operation.path}: writing failed ({error.strerror or error}); every file was put back as it was."
            ) from None


def _snapshot(path: Path) -> _Snapshot:
    try:
        return _Snapshot(path, path.read_bytes(), path.stat().st_mode & 0o7777)
    except FileNotFoundError:
        return _Snapshot(path, None, None)


def _undo(applied: list[_Snapshot]) -> None:
    for snapshot in reversed(applied):
        try:
            if snapshot.data is None:
                snapshot.path.unlink(missing_ok=True)
            else:
                atomic_write(snapshot.path, snapshot.data, snapshot.mode)
        except OSError:
            # NOTE: an undo that fails too leaves this file as the failed command wrote it.
            continue
