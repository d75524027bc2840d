"""Expand the PATH arguments into the config and source files a command works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.config import ALL_POOL_KEYS
from migrate.journal import JOURNAL_SUFFIX

# Folders that hold build output or tool state, never configs to migrate.
_SKIPPED_FOLDERS = frozenset({"zig-cache", ".zig-cache", "zig-out", "__pycache__", "node_modules"})


@dataclass(frozen=True, slots=True)
class Target:
    """A file to work on; `explicit` is True when it was named on the command line."""

    path: Path
    kind: str
    explicit: bool


def file_kind(path: Path) -> str:
    """Return "zig" for Zig sources and "toml" for everything else."""
    return "zig" if path.suffix == ".zig" else "toml"


# The suffixes of the files the commands rewrite; a folder walk finds only these.
CONFIG_SUFFIXES = (".toml", ".zig")


def unsupported_file_message(target: Target) -> str | None:
    """Return the error for a file named on the command line that is neither TOML nor Zig, else None."""
    # A missing file is reported as not found when it is read.
    if not target.explicit or not target.path.is_file() or target.path.suffix.lower() in CONFIG_SUFFIXES:
        return None
    return f"{target.path}: not a TOML (.toml) or Zig (.zig) file; name a config file or a folder."


def _mentions_pool_keys(path: Path) -> bool:
    """Tell cheaply whether a file names any pool key, so unrelated TOML files are skipped unread."""
    try:
        data = path.read_bytes().lower()
    except OSError:
        # An unreadable file is kept, so the command reports it instead of skipping it silently.
        return True
    return any(name.encode() in data for name in ALL_POOL_KEYS)


def _walk(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part in _SKIPPED_FOLDERS for part in relative.parts[:-1]):
            continue
        if path.is_file() and path.suffix in CONFIG_SUFFIXES:
            files.append(path)
    return files


def expand_paths(paths: list[Path], *, with_journals: bool = False) -> list[Target]:
    """Return the files under `paths`, in order, without duplicates.

    A folder contributes every *.toml that names a pool key and every *.zig, found
    recursively. Backups and journals never match those suffixes. With `with_journals`,
    a folder also contributes every file that has a journal beside it.
    """
    targets: list[Target] = []
    seen: set[Path] = set()

    def add(path: Path, explicit: bool) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            targets.append(Target(path, file_kind(path), explicit))

    for path in paths:
        if not path.is_dir():
            add(path, True)
            continue
        found = [p for p in _walk(path) if p.suffix == ".zig" or _mentions_pool_keys(p)]
        if with_journals:
            for journal in sorted(path.rglob("*" + JOURNAL_SUFFIX)):
                original = journal.with_name(journal.name[: -len(JOURNAL_SUFFIX)])
                if original not in found:
                    found.append(original)
        for found_path in sorted(found):
            add(found_path, False)
    return targets
