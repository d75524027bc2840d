"""Rewrite the pool keys of a TOML config in place, and reverse the rewrite.

tomlkit parses the document and is the reference for what it contains. The edits are
made on the text itself, line by line, so every byte outside the edited lines stays as
it was: comments, blank lines, key order, quoting, number style, CRLF line endings and a
missing final newline. Each result is parsed again and compared with the intended
values before it is returned.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tomlkit
import tomlkit.exceptions

from broker.config import ALL_POOL_KEYS, EXPANSION_KEYS, LEGACY_POOL_KEY, LIMIT_KEYS, POOL_KEYS, find_keys
from migrate.language import KEY_COMMENTS, comment_language
from migrate.toml_scan import ScannedDocument, Statement, scan

# An integer literal written with digit separators, such as 100_000.
_UNDERSCORE_NUMBER = re.compile(r"\d{1,3}(_\d{3})+")
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
    is the line the key had in the input.
    """

    action: str
    key: str
    line: int
    old: Any = None
    new: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "key": self.key, "line": self.line, "old": self.old, "new": self.new}


@dataclass(slots=True)
class Rewrite:
    """The rewritten text, the edits that produced it and the parsed result."""

    text: str
    changes: list[Change] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)


def parse_toml(text: str, *, path: str) -> dict[str, Any]:
    """Parse `text` with tomlkit and return plain Python values; raise TomlSyntaxError when invalid."""
    try:
        return tomlkit.parse(text).unwrap()
    except tomlkit.exceptions.ParseError as error:
        reason = str(error).split(" at line ")[0]
        raise TomlSyntaxError(path, error.line, error.col, f"invalid TOML: {reason}. Fix the syntax, then run the command again.") from None


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


def element_scope(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Return the path of the innermost array-of-tables element that contains `path`, or ()."""
    for index in range(len(path) - 1, -1, -1):
        if isinstance(path[index], int):
            return path[: index + 1]
    return ()


def pool_values_at(document: Mapping[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    """Return the pool values that apply to the table at `path`.

    A key in that table wins, then one in the same array-of-tables element, then the
    first one found anywhere, because the broker reads pool keys wherever they are.
    """
    scope = element_scope(path)
    found = find_keys(document, ALL_POOL_KEYS)
    values: dict[str, Any] = {}
    ranked = [f for f in found if f.path[: len(scope)] != scope] + [f for f in found if f.path[: len(scope)] == scope]
    ranked += [f for f in found if f.path == path]
    for item in ranked:
        values[item.name] = item.value
    return values


@dataclass(frozen=True, slots=True)
class NumberStyle:
    """How the file writes integers: with digit separators or not, and from how many digits."""

    underscores: bool
    four_digit_groups: bool

    def format(self, value: int) -> str:
        if not self.underscores or abs(value) < 1000:
            return str(value)
        if abs(value) < 10_000 and not self.four_digit_groups:
            return str(value)
        return f"{value:_}"


def _number_style(scanned: ScannedDocument, raw: str) -> NumberStyle:
    """Return the style for a number replacing `raw`: its own when it shows one, else the file's."""
    text = scanned.text
    numbers = [text[s.value_start : s.value_end].lstrip("+-") for s in scanned.statements]
    separated = [n for n in numbers if _UNDERSCORE_NUMBER.fullmatch(n)]
    four_digit_groups = any(len(n) == 5 for n in separated)
    digits = raw.lstrip("+-")
    if "_" in digits:
        return NumberStyle(True, four_digit_groups or len(digits) == 5)
    if digits.isdigit() and len(digits) >= 5:
        return NumberStyle(False, False)
    return NumberStyle(bool(separated), four_digit_groups)


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


def _statement_line(text: str, template: Statement, name: str, value_text: str, comment: str | None, gap: str) -> str:
    """Write a statement for `name` shaped like `template`: indent, key prefix, spacing around '='."""
    indent_and_prefix = text[template.line_start : template.last_key_start]
    last_key = text[template.last_key_start : template.last_key_end]
    between = text[template.last_key_end : template.value_start]
    line = f"{indent_and_prefix}{_spell_key(last_key, name)}{between}{value_text}"
    if comment:
        line += f"{gap}{comment}"
    return line


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


def _apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace each (start, end) span by its text; spans must not overlap."""
    pieces = []
    position = 0
    for start, end, replacement in sorted(edits):
        pieces.append(text[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


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
    """Parse the rewritten text and raise unless it holds exactly the expected values."""
    try:
        result = tomlkit.parse(text).unwrap()
    except tomlkit.exceptions.ParseError as error:
        raise TomlRewriteError(path, 1, 1, f"the rewritten text would not be valid TOML ({error}), so nothing was written.") from None
    if result != expected:
        raise TomlRewriteError(path, 1, 1, "the rewritten document would not hold the intended values, so nothing was written.")
    return result


def convert_toml(text: str, values: Mapping[str, int], *, path: str) -> Rewrite | None:
    """Replace each legacy pool key by the pool keys and apply the limit values.

    `values` holds "initial_pool_size" and "max_pool_size", then any of the limit keys to
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
    limit_values = {k: v for k, v in values.items() if k in LIMIT_KEYS}
    expected = copy.deepcopy(document)
    edits: list[tuple[int, int, str]] = []
    # (offset in the input, change) pairs; lines are counted in the output afterwards.
    pending: list[tuple[int, int, Change]] = []

    # Step 1: limit keys that already exist are updated in place, wherever they are.
    for name in limit_values:
        for statement in scanned.named(name):
            raw = text[statement.value_start : statement.value_end]
            old = _value_of(document, statement)
            expected_value = limit_values[name]
            _set_path(expected, statement.path, statement.key[-1], expected_value)
            if old == expected_value:
                continue
            new_raw = _number_style(scanned, raw).format(expected_value)
            edits.append((statement.value_start, statement.value_end, new_raw))
            pending.append((statement.value_start, 0, Change("updated", name, 0, old, expected_value)))

    # Step 2: each legacy line becomes the pool lines, followed by the missing limit keys.
    for statement in legacy_statements:
        old_value = _value_of(document, statement)
        raw = text[statement.value_start : statement.value_end]
        style = _number_style(scanned, raw)
        gap = _comment_gap(scanned, statement)
        ending = _line_ending(text, statement)
        own_comment = text[statement.comment_start : statement.line_end] if statement.comment_start is not None else None

        _delete_path(expected, statement.path, statement.key[-1])
        lines = []
        # A limit key is missing when no table of this array-of-tables element (or of the
        # whole document, outside arrays) sets it.
        scope = element_scope(statement.path)
        present = {s.name for s in scanned.named(*limit_values) if s.path[: len(scope)] == scope}
        names = [*POOL_KEYS, *(n for n in limit_values if n not in present)]
        for index, name in enumerate(names):
            value = values[name] if name in POOL_KEYS else limit_values[name]
            comment = own_comment if index == 0 and own_comment else f"# {comments[name]}"
            lines.append(_statement_line(text, statement, name, style.format(value), comment, gap))
            _set_path(expected, statement.path, _spell_key(statement.key[-1], name).strip("'\""), value)
            action = "replaced" if name in POOL_KEYS else "added"
            old = old_value if name in POOL_KEYS else None
            pending.append((statement.line_start, index, Change(action, name, 0, old, value)))
        edits.append((statement.line_start, statement.line_end, ending.join(lines)))

    new_text = _apply_edits(text, edits)
    result = _verify(new_text, expected, path)
    return Rewrite(new_text, _number_changes(text, edits, pending), result)


def _value_of(document: Mapping[str, Any], statement: Statement) -> Any:
    node: Any = document
    for part in (*statement.path, statement.key[-1]):
        node = node[part]
    return node


def _number_changes(text: str, edits: list[tuple[int, int, str]], pending: list[tuple[int, int, Change]]) -> list[Change]:
    """Give each change the 1-based line it has in the output text."""
    changes = []
    for offset, index, change in sorted(pending, key=lambda item: (item[0], item[1])):
        shift = 0
        for start, end, replacement in edits:
            if end <= offset and start < offset:
                shift += replacement.count("\n") - text.count("\n", start, end)
        line = _line_of(text, offset) + shift + index
        changes.append(Change(change.action, change.key, line, change.old, change.new))
    return changes


def revert_toml(text: str, *, path: str) -> Rewrite | None:
    """Put MAX_CLIENTS_POOL = MAX_POOL_SIZE back in place of the pool keys and drop expansion keys.

    Limit keys that a conversion added stay, because the legacy broker accepts them.
    Returns None when the document has no pool keys to revert.
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
        if ceiling is not None:
            value_raw = text[ceiling.value_start : ceiling.value_end]
            value = _value_of(document, ceiling)
        else:
            found = find_keys(document, ("max_pool_size",))
            if not found:
                raise TomlRewriteError(
                    path, first.line, 1,
                    "INITIAL_POOL_SIZE is set but MAX_POOL_SIZE is not, so the legacy value cannot be derived. "
                    "Add MAX_POOL_SIZE or restore the file from its backup.",
                )
            value = found[0].value
            value_raw = _number_style(scanned, "").format(value)

        legacy_name = _spell_key(text[first.last_key_start : first.last_key_end], LEGACY_POOL_KEY)
        line = text[first.line_start : first.last_key_start] + legacy_name + text[first.last_key_end : first.value_start] + value_raw
        if first.comment_start is not None:
            comment = text[first.comment_start : first.line_end]
            if comment.lstrip("#").strip() not in added_comments:
                line += text[first.value_end : first.line_end]
        edits.append((first.line_start, first.line_end, line))
        for statement in statements:
            old = _value_of(document, statement)
            _delete_path(expected, statement.path, statement.key[-1])
            removed.append(Change("removed", statement.name, statement.line, old, None))
        _set_path(expected, table_path, legacy_name.strip("'\""), value)
        pending.append((first.line_start, 0, Change("restored", LEGACY_POOL_KEY, 0, None, value)))
        for statement in statements[1:]:
            edits.append(_line_removal(text, statement))

    # Step 3: expansion keys exist only for the dynamic pool.
    for statement in scanned.named(*EXPANSION_KEYS):
        old = _value_of(document, statement)
        _delete_path(expected, statement.path, statement.key[-1])
        edits.append(_line_removal(text, statement))
        removed.append(Change("removed", statement.name, statement.line, old, None))

    new_text = _apply_edits(text, edits)
    result = _verify(new_text, expected, path)
    changes = _number_changes(text, edits, pending) + removed
    return Rewrite(new_text, changes, result)


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
