"""Rewrite the pool keys of a TOML config in place, and reverse the rewrite.

tomlkit parses the document and is the reference for what it contains. The edits are
made on the text itself, line by line, so every byte outside the edited lines stays as
it was: comments, blank lines, key order, quoting, number style, CRLF line endings and a
missing final newline. Each result is parsed again and compared with the intended
values before it is returned.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tomlkit
import tomlkit.exceptions

from broker.config import ALL_POOL_KEYS, EXPANSION_KEYS, LEGACY_POOL_KEY, LIMIT_KEYS, POOL_KEYS, find_keys
from migrate.language import KEY_COMMENTS, comment_language
from migrate.legacy_comment import comment_key
from migrate.number_style import format_decimal, separator_group, write_number
from migrate.text_edits import apply_edits
from migrate.toml_scan import ScannedDocument, Statement, scan
from migrate.toml_units import statement_value, unit_statements

if TYPE_CHECKING:
    from migrate.toml_originals import TomlOriginals

# Gap before an end-of-line comment when the file has none to copy.
_DEFAULT_COMMENT_GAP = "  "


class TomlRewriteError(ValueError):
    """A TOML file that cannot be rewritten; str() is `path:line:column: message`."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{path}:{line}:{column}: {message}")


class TomlSyntaxError(TomlRewriteError):
    """The file is not valid TOML."""


@dataclass(frozen=True, slots=True)
class Change:
    """One edit of one key.

    `line` is 1-based and counts lines of the output, except for a removed key, where it
    is the line the key had in the input. `old_text` and `new_text` are the statements as
    written in the file (`pool.max_clients_pool = 100_000`), so they can be searched for.
    """

    action: str
    key: str
    line: int
    old: Any = None
    new: Any = None
    old_text: str | None = None
    new_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "key": self.key,
            "line": self.line,
            "old": self.old,
            "new": self.new,
            "old_text": self.old_text,
            "new_text": self.new_text,
        }


@dataclass(slots=True)
class Rewrite:
    """The rewritten text, the edits that produced it and the parsed result."""

    text: str
    changes: list[Change] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)


def parse_toml(text: str, *, path: str) -> dict[str, Any]:
    """Parse `text` with tomlkit and return plain Python values; raise TomlSyntaxError when invalid.

    tomllib words most syntax errors more precisely than tomlkit, so its reason and
    position are reported when it rejects the text too.
    """
    try:
        return tomlkit.parse(text).unwrap()
    except tomlkit.exceptions.ParseError as error:
        # tomlkit counts columns from 0; messages count from 1.
        reason, line, column = str(error).split(" at line ")[0], error.line, error.col + 1
    described = _tomllib_error(text)
    if described is not None:
        reason, line, column = described
    reason = reason.rstrip(".")
    raise TomlSyntaxError(path, line, column, f"invalid TOML: {reason}. Fix the syntax, then run the command again.")


# The position suffix of tomllib's messages (Python 3.11 and 3.12 give no attributes for it).
_TOMLLIB_POSITION = re.compile(r"^(?P<reason>.*) \((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)$", re.S)


def _tomllib_error(text: str) -> tuple[str, int, int] | None:
    """Return tomllib's reason, 1-based line and 1-based column for invalid `text`, or None when it gives none."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOMLLIB_POSITION.match(str(error))
        if match is None:
            return None
        if match["line"] is not None:
            return match["reason"], int(match["line"]), int(match["column"])
        # At the end of the document: the column after the last character.
        last_line = text.splitlines()[-1] if text.splitlines() and not text.endswith(("\n", "\r")) else ""
        line = text.count("\n") + 1
        return match["reason"], line, len(last_line) + 1
    return None


def classify_toml(document: Mapping[str, Any]) -> str:
    """Return "legacy", "converted", "conflict" or "none" for a parsed document."""
    names = {found.name for found in find_keys(document, ALL_POOL_KEYS)}
    legacy = LEGACY_POOL_KEY in names
    converted = bool(names & set(POOL_KEYS))
    if legacy and converted:
        return "conflict"
    if legacy:
        return "legacy"
    if converted:
        return "converted"
    return "none"


def _file_separator_group(scanned: ScannedDocument) -> int:
    """Return the digit group size the file writes numbers with (see migrate.number_style)."""
    return separator_group(scanned.text[s.value_start : s.value_end] for s in scanned.statements)


def _written(text: str, statement: Statement) -> str:
    """Return a statement as written, from its key to the end of its value."""
    return text[statement.key_start : statement.value_end]


def _is_integer(value: Any, expected: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == expected


def _spell_key(template: str, name: str) -> str:
    """Spell `name` like the raw key part `template`: same letter case and quoting."""
    quote = template[0] if template[:1] in ("'", '"') else ""
    bare = template.strip("'\"")
    spelled = name.upper() if bare.isupper() else name
    return f"{quote}{spelled}{quote}"


def _line_ending(text: str, statement: Statement) -> str:
    if text.startswith("\r\n", statement.line_end):
        return "\r\n"
    if text.startswith("\n", statement.line_end):
        return "\n"
    # The last line has no ending; use the file's own.
    return "\r\n" if "\r\n" in text else "\n"


def _comment_gap(scanned: ScannedDocument, statement: Statement) -> str:
    text = scanned.text
    candidates = [statement] + [s for s in scanned.statements if s is not statement]
    for candidate in candidates:
        if candidate.comment_start is not None:
            gap_start = candidate.comment_start
            while gap_start > candidate.value_end and text[gap_start - 1] in " \t":
                gap_start -= 1
            gap = text[gap_start : candidate.comment_start]
            if gap:
                return gap
    return _DEFAULT_COMMENT_GAP


def _statement_line(text: str, template: Statement, name: str, value_text: str, comment: str | None, gap: str) -> tuple[str, str]:
    """Write a statement for `name` shaped like `template`: indent, key prefix, spacing around '='.

    Returns the whole line and the statement alone (key to value, as `_written` gives it).
    """
    indent = text[template.line_start : template.key_start]
    prefix = text[template.key_start : template.last_key_start]
    last_key = text[template.last_key_start : template.last_key_end]
    between = text[template.last_key_end : template.value_start]
    statement = f"{prefix}{_spell_key(last_key, name)}{between}{value_text}"
    line = indent + statement
    if comment:
        line += f"{gap}{comment}"
    return line, statement


def _set_path(document: dict[str, Any], path: tuple[str | int, ...], key: str, value: Any) -> None:
    node: Any = document
    for part in path:
        node = node[part]
    node[key] = value


def _delete_path(document: dict[str, Any], path: tuple[str | int, ...], key: str) -> None:
    node: Any = document
    for part in path:
        node = node[part]
    del node[key]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _check_all_located(document: Mapping[str, Any], scanned: ScannedDocument, names: tuple[str, ...], path: str) -> None:
    """Raise when a key that tomlkit found has no statement line, which means an inline table."""
    located = {(s.path, s.key[-1]) for s in scanned.statements}
    for found in find_keys(document, names):
        if (found.path, found.key) not in located:
            raise TomlRewriteError(
                path, 1, 1,
                f"{found.dotted} is inside an inline table, which this tool does not rewrite. "
                "Move it to a [table] section or a dotted key, then run the command again.",
            )


def _verify(text: str, expected: dict[str, Any], path: str) -> dict[str, Any]:
    """Parse the rewritten text and raise unless it contains exactly the expected values."""
    try:
        result = tomlkit.parse(text).unwrap()
    except tomlkit.exceptions.ParseError as error:
        raise TomlRewriteError(path, 1, 1, f"the rewritten text would not be valid TOML ({error}), so nothing was written.") from None
    if result != expected:
        raise TomlRewriteError(path, 1, 1, "the rewritten document would not hold the intended values, so nothing was written.")
    return result


def convert_toml(text: str, values: Mapping[str, int], *, path: str) -> Rewrite | None:
    """Replace each legacy pool key by the pool keys and apply the limit values.

    `values` contains "initial_pool_size" and "max_pool_size", then any of the limit keys to
    set. Returns None when the document has no legacy key. The caller checks conflicts
    first with classify_toml.
    """
    document = parse_toml(text, path=path)
    scanned = scan(text)
    _check_all_located(document, scanned, ALL_POOL_KEYS, path)
    legacy_statements = scanned.named(LEGACY_POOL_KEY)
    if not legacy_statements:
        return None

    language = comment_language(scanned.comments)
    comments = KEY_COMMENTS[language]
    group = _file_separator_group(scanned)
    limit_values = {k: v for k, v in values.items() if k in LIMIT_KEYS}
    expected = copy.deepcopy(document)
    edits: list[tuple[int, int, str]] = []
    # (offset in the input, change) pairs; lines are counted in the output afterwards.
    pending: list[tuple[int, int, Change]] = []

    # Step 1: limit keys that already exist are updated in place, wherever they are. One
    # that already has the integer to write is neither edited nor listed.
    for name in limit_values:
        for statement in scanned.named(name):
            old = statement_value(document, statement)
            expected_value = limit_values[name]
            _set_path(expected, statement.path, statement.key[-1], expected_value)
            if _is_integer(old, expected_value):
                continue
            new_raw = format_decimal(expected_value, group)
            edits.append((statement.value_start, statement.value_end, new_raw))
            new_statement = text[statement.key_start : statement.value_start] + new_raw
            change = Change("updated", name, 0, old, expected_value, _written(text, statement), new_statement)
            pending.append((statement.value_start, 0, change))

    # Step 2: each legacy line becomes the pool lines, followed by the limit keys its unit lacks.
    for statement in legacy_statements:
        old_value = statement_value(document, statement)
        raw = text[statement.value_start : statement.value_end]
        gap = _comment_gap(scanned, statement)
        ending = _line_ending(text, statement)
        own_comment = text[statement.comment_start : statement.line_end] if statement.comment_start is not None else None
        own_comment_key = comment_key(own_comment) if own_comment else None

        _delete_path(expected, statement.path, statement.key[-1])
        lines = []
        present = unit_statements(scanned.statements, statement.path, limit_values)
        names = [*POOL_KEYS, *(n for n in limit_values if n not in present)]
        for index, name in enumerate(names):
            value = values[name] if name in POOL_KEYS else limit_values[name]
            comment = own_comment if name == own_comment_key else f"# {comments[name]}"
            value_text = write_number(value, group, raw) if name in POOL_KEYS else format_decimal(value, group)
            line, new_statement = _statement_line(text, statement, name, value_text, comment, gap)
            lines.append(line)
            _set_path(expected, statement.path, _spell_key(statement.key[-1], name).strip("'\""), value)
            if name in POOL_KEYS:
                change = Change("replaced", name, 0, old_value, value, _written(text, statement), new_statement)
            else:
                change = Change("added", name, 0, None, value, None, new_statement)
            pending.append((statement.line_start, index, change))
        edits.append((statement.line_start, statement.line_end, ending.join(lines)))

    new_text = apply_edits(text, edits)
    result = _verify(new_text, expected, path)
    return Rewrite(new_text, _number_changes(text, edits, pending), result)


def _number_changes(text: str, edits: list[tuple[int, int, str]], pending: list[tuple[int, int, Change]]) -> list[Change]:
    """Give each change the 1-based line it has in the output text."""
    changes = []
    for offset, index, change in sorted(pending, key=lambda item: (item[0], item[1])):
        shift = 0
        for start, end, replacement in edits:
            if end <= offset and start < offset:
                shift += replacement.count("\n") - text.count("\n", start, end)
        line = _line_of(text, offset) + shift + index
        changes.append(dataclasses.replace(change, line=line))
    return changes


def revert_toml(text: str, *, path: str, originals: TomlOriginals | None = None) -> Rewrite | None:
    """Put MAX_CLIENTS_POOL back in place of the pool keys and drop expansion keys.

    With `originals`, each table gets back the legacy literal it had before conversion, the
    limit keys the conversion added are removed and the ones it updated get their old
    literals. Without them MAX_CLIENTS_POOL = MAX_POOL_SIZE, and limit keys stay, because the
    legacy broker accepts them. Returns None when the document has no pool keys to revert.
    """
    document = parse_toml(text, path=path)
    scanned = scan(text)
    _check_all_located(document, scanned, ALL_POOL_KEYS, path)
    pool_statements = scanned.named(*POOL_KEYS)
    if not pool_statements:
        return None

    added_comments = {text for language in KEY_COMMENTS.values() for text in language.values()}
    expected = copy.deepcopy(document)
    edits: list[tuple[int, int, str]] = []
    pending: list[tuple[int, int, Change]] = []
    removed: list[Change] = []

    # Step 1: group the pool statements by the table they belong to.
    groups: dict[tuple[str | int, ...], list[Statement]] = {}
    for statement in pool_statements:
        groups.setdefault(statement.path, []).append(statement)

    # Step 2: the first pool line of each table becomes the legacy line; the other goes.
    for table_path, statements in groups.items():
        first = statements[0]
        ceiling = next((s for s in statements if s.name == "max_pool_size"), None)
        original = originals.legacy.get(table_path) if originals is not None else None
        if original is not None:
            value, value_raw = original
        elif ceiling is not None:
            value_raw = text[ceiling.value_start : ceiling.value_end]
            value = statement_value(document, ceiling)
        else:
            found = find_keys(document, ("max_pool_size",))
            if not found:
                raise TomlRewriteError(
                    path, first.line, 1,
                    "INITIAL_POOL_SIZE is set but MAX_POOL_SIZE is not, so the legacy value cannot be derived. "
                    "Add MAX_POOL_SIZE or restore the file from its backup.",
                )
            value = found[0].value
            value_raw = format_decimal(value, _file_separator_group(scanned))

        legacy_name = _spell_key(text[first.last_key_start : first.last_key_end], LEGACY_POOL_KEY)
        legacy_statement = text[first.key_start : first.last_key_start] + legacy_name + text[first.last_key_end : first.value_start] + value_raw
        line = text[first.line_start : first.key_start] + legacy_statement
        # The legacy comment may sit on either pool line, because convert moves it to the
        # line it describes; a comment that convert added is dropped.
        for statement in statements:
            if statement.comment_start is not None:
                comment = text[statement.comment_start : statement.line_end]
                if comment.lstrip("#").strip() not in added_comments:
                    line += text[statement.value_end : statement.line_end]
                    break
        edits.append((first.line_start, first.line_end, line))
        for statement in statements:
            old = statement_value(document, statement)
            _delete_path(expected, statement.path, statement.key[-1])
            removed.append(Change("removed", statement.name, statement.line, old, None, _written(text, statement)))
        _set_path(expected, table_path, legacy_name.strip("'\""), value)
        # "restored" only when the value is the one the file had before conversion.
        action = "restored" if original is not None else "set"
        pending.append((first.line_start, 0, Change(action, LEGACY_POOL_KEY, 0, None, value, None, legacy_statement)))
        for statement in statements[1:]:
            edits.append(_line_removal(text, statement))

    # Step 3: expansion keys exist only for the dynamic pool.
    for statement in scanned.named(*EXPANSION_KEYS):
        old = statement_value(document, statement)
        _delete_path(expected, statement.path, statement.key[-1])
        edits.append(_line_removal(text, statement))
        removed.append(Change("removed", statement.name, statement.line, old, None, _written(text, statement)))

    # Step 4: limit keys go back to what they were before conversion, when that is known.
    if originals is not None:
        _revert_limits(text, document, scanned, originals, expected, edits, pending, removed)

    new_text = apply_edits(text, edits)
    result = _verify(new_text, expected, path)
    changes = _number_changes(text, edits, pending) + removed
    return Rewrite(new_text, changes, result)


def _revert_limits(
    text: str,
    document: dict[str, Any],
    scanned: ScannedDocument,
    originals: TomlOriginals,
    expected: dict[str, Any],
    edits: list[tuple[int, int, str]],
    pending: list[tuple[int, int, Change]],
    removed: list[Change],
) -> None:
    """Remove the limit keys a conversion added and give the ones it updated their old literals."""
    for statement in scanned.named(*LIMIT_KEYS):
        where = (statement.path, statement.name)
        current = statement_value(document, statement)
        if where in originals.added:
            _delete_path(expected, statement.path, statement.key[-1])
            edits.append(_line_removal(text, statement))
            removed.append(Change("removed", statement.name, statement.line, current, None, _written(text, statement)))
            continue
        if where not in originals.limits:
            continue
        value, raw = originals.limits[where]
        if text[statement.value_start : statement.value_end] == raw:
            continue
        _set_path(expected, statement.path, statement.key[-1], value)
        edits.append((statement.value_start, statement.value_end, raw))
        new_statement = text[statement.key_start : statement.value_start] + raw
        change = Change("restored", statement.name, 0, current, value, _written(text, statement), new_statement)
        pending.append((statement.value_start, 0, change))


def _line_removal(text: str, statement: Statement) -> tuple[int, int, str]:
    """Return the edit that removes a statement's whole line, line ending included."""
    end = statement.line_end
    if text.startswith("\r\n", end):
        return statement.line_start, end + 2, ""
    if text.startswith("\n", end):
        return statement.line_start, end + 1, ""
    # The last line has no ending, so the ending before it goes instead.
    start = statement.line_start
    if text[:start].endswith("\r\n"):
        start -= 2
    elif text[:start].endswith("\n"):
        start -= 1
    return start, end, ""
