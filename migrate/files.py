"""Read config files strictly and write them atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

# Suffix of the temporary file that a write renames into place; a folder scan skips it.
TEMP_SUFFIX = ".poolmigrate-tmp"


class InputError(Exception):
    """A file that cannot be read as UTF-8 text; the message names the file and the fix."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes:
    """Return the bytes of `path`, raising InputError when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found. Check the path.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file.") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied. Make the file readable, then run the command again.") from None
    except OSError as error:
        raise InputError(f"{path}: could not be read ({error.strerror or error}).") from None


def decode_text(path: Path, data: bytes) -> str:
    """Decode `data` as UTF-8 without touching line endings, rejecting binary content."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise InputError(
            f"{path}: is a binary file (NUL byte at offset {offset}), not a text config. Pass a TOML or Zig source file."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise InputError(
            f"{path}:{line}:{column}: invalid UTF-8 (byte 0x{data[error.start]:02x}). "
            "Save the file as UTF-8, then run the command again."
        ) from None


def read_text(path: Path) -> tuple[bytes, str]:
    """Return the raw bytes of `path` and their UTF-8 text."""
    data = read_bytes(path)
    return data, decode_text(path, data)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data` through a temporary file in the same folder.

    The temporary file is flushed and fsynced before the rename, so a reader sees either
    the old bytes or the new ones. `mode` defaults to the mode of the file being
    replaced, or 0o644 for a new file. A symlink is followed and its target replaced.
    """
    target = Path(os.path.realpath(path))
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644

    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry so the rename survives a crash; not every platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_if_present(path: Path) -> bool:
    """Delete `path` and return True, or return False when it does not exist."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
