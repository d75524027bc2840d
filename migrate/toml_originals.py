"""The legacy and limit values a TOML file had before conversion, so a forced rollback can put them back.

The journal stores them at convert time. For a journal written before it stored them,
they are read again from the backup, which contains the original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.config import LEGACY_POOL_KEY, LIMIT_KEYS
from migrate.toml_rewrite import parse_toml
from migrate.toml_scan import scan
from migrate.toml_units import statement_value, unit_statements

TablePath = tuple[str | int, ...]


@dataclass(slots=True)
class TomlOriginals:
    """Values before conversion: the legacy key per table, the limit keys it updated, the limit keys it added.

    Each value is stored with its literal as written (`100_000`), so a rollback can write it back unchanged.
    """

    legacy: dict[TablePath, tuple[Any, str]] = field(default_factory=dict)
    limits: dict[tuple[TablePath, str], tuple[Any, str]] = field(default_factory=dict)
    added: set[tuple[TablePath, str]] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "legacy": [{"table": list(table), "value": value, "text": text} for table, (value, text) in self.legacy.items()],
            "limits": [
                {"table": list(table), "key": key, "value": value, "text": text}
                for (table, key), (value, text) in self.limits.items()
            ],
            "added": [{"table": list(table), "key": key} for table, key in sorted(self.added, key=str)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TomlOriginals:
        """Read the form that to_json writes; raise KeyError or TypeError when it is damaged."""
        return cls(
            legacy={tuple(item["table"]): (item["value"], item["text"]) for item in data["legacy"]},
            limits={(tuple(item["table"]), item["key"]): (item["value"], item["text"]) for item in data["limits"]},
            added={(tuple(item["table"]), item["key"]) for item in data["added"]},
        )


def record_originals(text: str, values: dict[str, int], *, path: str) -> TomlOriginals:
    """Record what `convert_toml(text, values)` replaces, updates and adds in the legacy document `text`."""
    document = parse_toml(text, path=path)
    scanned = scan(text)
    limit_names = [name for name in values if name in LIMIT_KEYS]
    originals = TomlOriginals()

    for statement in scanned.named(*limit_names):
        value = statement_value(document, statement)
        originals.limits[(statement.path, statement.name)] = (value, text[statement.value_start : statement.value_end])

    for statement in scanned.named(LEGACY_POOL_KEY):
        value = statement_value(document, statement)
        originals.legacy[statement.path] = (value, text[statement.value_start : statement.value_end])
        present = unit_statements(scanned.statements, statement.path, limit_names)
        originals.added.update((statement.path, name) for name in limit_names if name not in present)
    return originals
