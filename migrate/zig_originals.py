"""The legacy and limit values a config.zig had before conversion, so a forced rollback can put them back.

The journal stores them at convert time. For a journal written before it stored them,
they are read again from the backup, which contains the original bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migrate.text_edits import apply_edits
from migrate.zig_rewrite import LEGACY_NAME, POOL_KEYS, deletion_edit
from migrate.zig_source import ZigSource, parse_integer


@dataclass(slots=True)
class ZigOriginals:
    """Values before conversion: MAX_CLIENTS_POOL, the limit constants it updated, the ones it added.

    Each value is stored with its literal as written (`100_000`), so a rollback can write it back unchanged.
    """

    legacy: tuple[int, str] | None = None
    limits: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    added: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        legacy = None if self.legacy is None else {"value": self.legacy[0], "text": self.legacy[1]}
        return {
            "legacy": legacy,
            "limits": [{"name": name, "value": value, "text": text} for name, (value, text) in self.limits.items()],
            "added": sorted(self.added),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZigOriginals:
        """Read the form that to_json writes; raise KeyError or TypeError when it is damaged."""
        legacy = data["legacy"]
        return cls(
            legacy=None if legacy is None else (legacy["value"], str(legacy["text"])),
            limits={str(item["name"]): (item["value"], str(item["text"])) for item in data["limits"]},
            added={str(name) for name in data["added"]},
        )


def record_zig_originals(text: str, values: Mapping[str, int]) -> ZigOriginals:
    """Record what `convert_config_zig(text, values)` replaces, updates and adds in the legacy config `text`."""
    source = ZigSource(text)
    originals = ZigOriginals()
    legacy = source.declarations.get(LEGACY_NAME)
    if legacy is not None and legacy.value_text:
        originals.legacy = (parse_integer(legacy.value_text), legacy.value_text)
    for key in values:
        if key in POOL_KEYS:
            continue
        declaration = source.declarations.get(key.upper())
        if declaration is None:
            originals.added.add(key.upper())
        elif declaration.value_text:
            originals.limits[declaration.name] = (parse_integer(declaration.value_text), declaration.value_text)
    return originals


def apply_zig_originals(text: str, originals: ZigOriginals) -> tuple[str, set[str]]:
    """Put the values before conversion back into a reverted config.zig.

    MAX_CLIENTS_POOL and the updated limit constants get their old literals, and limit
    constants the conversion added are deleted. Returns the new text and the names whose
    value is now the one the file had before conversion.
    """
    source = ZigSource(text)
    edits: list[tuple[int, int, str]] = []
    restored: set[str] = set()
    old_literals = dict(originals.limits)
    if originals.legacy is not None:
        old_literals[LEGACY_NAME] = originals.legacy
    for name, (_, literal) in old_literals.items():
        declaration = source.declarations.get(name)
        if declaration is None or not declaration.value_text:
            continue
        restored.add(name)
        if declaration.value_text != literal:
            edits.append((declaration.value_start, declaration.value_end, literal))
    deletions = []
    for name in originals.added:
        declaration = source.declarations.get(name)
        # Only a declaration alone on its line can go without touching other code.
        if declaration is not None and declaration.layout_problem() is None:
            deletions.append(deletion_edit(source, declaration))
    return apply_edits(text, edits + _merge(deletions)), restored


def _merge(deletions: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Join overlapping deletions, which adjacent lines at the end of a file without a final newline give."""
    merged: list[tuple[int, int, str]] = []
    for start, end, _ in sorted(deletions):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), "")
        else:
            merged.append((start, end, ""))
    return merged
