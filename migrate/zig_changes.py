"""Describe a Zig rewrite as one change per edited line, from a line diff of the old and new text.

The Zig rewriter returns only the new text, so the changes are read back from the
difference: declarations of pool settings that were replaced, added, updated, restored
or removed, and lines whose `config.NAME` references were renamed. Each change carries
the 1-based line (in the new text, or in the old text for a removal) and the code as
written, so it can be searched for in the file.
"""

from __future__ import annotations

import difflib
from typing import Any

from migrate.zig_rewrite import INITIAL_NAME, LEGACY_NAME, MAXIMUM_NAME
from migrate.zig_source import Declaration, ZigSource, parse_integer

_POOL_NAMES = (INITIAL_NAME, MAXIMUM_NAME)
_REFERENCED_NAMES = {LEGACY_NAME, *_POOL_NAMES}


def _declarations_by_line(source: ZigSource) -> dict[int, Declaration]:
    return {source.lines.position(d.name_token.start)[0]: d for d in source.declarations.values()}


def _references_by_line(source: ZigSource) -> dict[int, list[str]]:
    """Return the written references (`config.MAX_CLIENTS_POOL`) on each line, in order."""
    lines: dict[int, list[str]] = {}
    for reference in source.references(_REFERENCED_NAMES):
        line, _ = source.lines.position(reference.token.start)
        lines.setdefault(line, []).append(source.text[reference.start : reference.token.end])
    return lines


def _written(source: ZigSource, declaration: Declaration) -> str:
    return source.text[declaration.name_token.start : declaration.value_end]


def _value(declaration: Declaration) -> Any:
    value = parse_integer(declaration.value_text)
    return declaration.value_text if value is None else value


def _change(action: str, line: int, key: str, old: Any, new: Any, old_text: str | None, new_text: str | None) -> dict[str, Any]:
    return {"action": action, "key": key, "line": line, "old": old, "new": new, "old_text": old_text, "new_text": new_text}


def describe_zig_changes(old_text: str, new_text: str) -> list[dict[str, Any]]:
    """Return one change per line that differs between the old and the new Zig text."""
    old_source, new_source = ZigSource(old_text), ZigSource(new_text)
    old_declarations, new_declarations = _declarations_by_line(old_source), _declarations_by_line(new_source)
    old_references, new_references = _references_by_line(old_source), _references_by_line(new_source)
    matcher = difflib.SequenceMatcher(a=old_text.splitlines(), b=new_text.splitlines(), autojunk=False)

    changes: list[dict[str, Any]] = []
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        old_lines = range(old_start + 1, old_end + 1)
        new_lines = range(new_start + 1, new_end + 1)
        old_block = {old_declarations[n].name: (n, old_declarations[n]) for n in old_lines if n in old_declarations}
        new_block = [(n, new_declarations[n]) for n in new_lines if n in new_declarations]
        changes += _declaration_changes(old_source, new_source, old_block, new_block)

        # Lines without a declaration pair up in order; their renamed references are the change.
        plain_old = [n for n in old_lines if n not in old_declarations]
        plain_new = [n for n in new_lines if n not in new_declarations]
        for old_line, new_line in zip(plain_old, plain_new):
            before, after = old_references.get(old_line, []), new_references.get(new_line, [])
            if before != after and after:
                name = after[0].rsplit(".", 1)[-1]
                changes.append(_change("replaced", new_line, name.lower(), before[0] if before else None, after[0],
                                       ", ".join(before) or None, ", ".join(after)))
    return sorted(changes, key=lambda change: change["line"])


def _declaration_changes(
    old_source: ZigSource,
    new_source: ZigSource,
    old_block: dict[str, tuple[int, Declaration]],
    new_block: list[tuple[int, Declaration]],
) -> list[dict[str, Any]]:
    """Match the declarations of one differing block of lines by name."""
    changes = []
    used: set[str] = set()
    for line, declaration in new_block:
        name = declaration.name
        new_written = _written(new_source, declaration)
        if name in old_block:
            used.add(name)
            old_declaration = old_block[name][1]
            old_written = _written(old_source, old_declaration)
            if old_written != new_written:
                changes.append(_change("updated", line, name.lower(), _value(old_declaration), _value(declaration), old_written, new_written))
        elif name in _POOL_NAMES and LEGACY_NAME in old_block:
            used.add(LEGACY_NAME)
            legacy = old_block[LEGACY_NAME][1]
            changes.append(_change("replaced", line, name.lower(), _value(legacy), _value(declaration), _written(old_source, legacy), new_written))
        elif name == LEGACY_NAME and any(pool in old_block for pool in _POOL_NAMES):
            used.update(_POOL_NAMES)
            changes.append(_change("restored", line, name.lower(), None, _value(declaration), None, new_written))
        else:
            changes.append(_change("added", line, name.lower(), None, _value(declaration), None, new_written))
    for name, (line, declaration) in old_block.items():
        if name not in used:
            changes.append(_change("removed", line, name.lower(), _value(declaration), None, _written(old_source, declaration), None))
    return changes
