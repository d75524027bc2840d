"""Find settings keys in a parsed TOML document and locate them in the file's text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True, slots=True)
class FoundKey:
    """A settings key found in a parsed TOML document."""

    path: tuple[str | int, ...]
    key: str
    value: Any

    @property
    def name(self) -> str:
        return self.key.lower()

    @property
    def dotted(self) -> str:
        parts = [f"[{p}]" if isinstance(p, int) else p for p in (*self.path, self.key)]
        return ".".join(parts).replace(".[", "[")


def iter_keys(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[FoundKey]:
    """Yield every key/value pair of a parsed TOML document, depth first, in file order."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from iter_keys(value, (*path, key))
            elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                yield FoundKey(path, key, value)
                for index, item in enumerate(value):
                    yield from iter_keys(item, (*path, key, index))
            else:
                yield FoundKey(path, key, value)


def find_keys(document: Mapping[str, Any], names: tuple[str, ...]) -> list[FoundKey]:
    """Return the keys of `document` whose lower-case name is in `names`."""
    wanted = set(names)
    return [found for found in iter_keys(document) if found.name in wanted]


def locate_key(text: str, key: str, occurrence: int = 0) -> tuple[int, int] | None:
    """Return the 1-based line and column where `key` is assigned in `text`, if found.

    `occurrence` counts from 0 and picks a later assignment of the same key name.
    """
    pattern = re.compile(rf"^[ \t]*(?:[\w\"'.-]+\.)?[\"']?({re.escape(key)})[\"']?[ \t]*=", re.M | re.I)
    for index, match in enumerate(pattern.finditer(text)):
        if index == occurrence:
            return _line_and_column(text, match.start(1))
    return None


def locate_table(text: str, name: str, occurrence: int = 0) -> tuple[int, int] | None:
    """Return the 1-based line and column of the `[[name]]` header number `occurrence`, if found."""
    pattern = re.compile(rf"^[ \t]*\[\[[ \t]*(?:[\w\"'.-]+\.)?[\"']?({re.escape(name)})[\"']?[ \t]*\]\]", re.M | re.I)
    for index, match in enumerate(pattern.finditer(text)):
        if index == occurrence:
            return _line_and_column(text, match.start(1))
    return None


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
