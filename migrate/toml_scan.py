"""Find the statements of a TOML document as spans of its text.

tomlkit reports what a document contains, and this scanner reports where each key/value
statement sits (line, key, value and comment offsets), so a rewrite can touch those bytes alone.
The text must already have parsed as TOML: the scanner trusts the syntax and does not
report errors. Keys inside inline tables are not statements and are not listed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

# A local date, which TOML allows to be followed by a space and a time.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

_BARE_KEY_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class Statement:
    """One `key = value` statement; offsets index the whole text, line numbers are 1-based."""

    line: int
    table: tuple[str | int, ...]
    key: tuple[str, ...]
    line_start: int
    key_start: int
    last_key_start: int
    last_key_end: int
    value_start: int
    value_end: int
    comment_start: int | None
    line_end: int

    @property
    def path(self) -> tuple[str | int, ...]:
        """Path of the containing table, dotted-key parts included, as broker.config.iter_keys gives it."""
        return (*self.table, *self.key[:-1])

    @property
    def name(self) -> str:
        return self.key[-1].lower()


@dataclass(slots=True)
class ScannedDocument:
    """Statements and comments of a TOML text, in file order."""

    text: str
    statements: list[Statement] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def named(self, *names: str) -> list[Statement]:
        wanted = set(names)
        return [s for s in self.statements if s.name in wanted]


def scan(text: str) -> ScannedDocument:
    """Scan a TOML text that is known to parse and return its statements and comments."""
    return _Scanner(text).run()


def _decode_key(raw: str) -> tuple[str, ...]:
    """Decode a raw dotted key (quotes, escapes, whitespace around dots) into its parts."""
    node = tomllib.loads(f"{raw} = 0")
    parts: list[str] = []
    while isinstance(node, dict):
        (name, node), = node.items()
        parts.append(name)
    return tuple(parts)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1
        self.table: tuple[str | int, ...] = ()
        # Number of elements seen so far for each array of tables, keyed by its resolved path.
        self.array_counts: dict[tuple[str | int, ...], int] = {}
        self.result = ScannedDocument(text)

    def run(self) -> ScannedDocument:
        text = self.text
        while self.position < len(text):
            line_start = self.position
            self._skip_blanks()
            if self.position >= len(text):
                break
            character = text[self.position]
            if character in "\r\n":
                self._skip_newline()
            elif character == "#":
                self._read_comment()
                self._skip_newline()
            elif character == "[":
                self._read_header()
                self._finish_line()
            else:
                self._read_statement(line_start)
        return self.result

    # Low-level movement.

    def _skip_blanks(self) -> None:
        while self.position < len(self.text) and self.text[self.position] in " \t":
            self.position += 1

    def _skip_newline(self) -> None:
        if self.text.startswith("\r\n", self.position):
            self.position += 2
        elif self.position < len(self.text) and self.text[self.position] == "\n":
            self.position += 1
        else:
            return
        self.line += 1

    def _read_comment(self) -> None:
        start = self.position
        while self.position < len(self.text) and self.text[self.position] not in "\r\n":
            self.position += 1
        self.result.comments.append(self.text[start + 1 : self.position])

    def _finish_line(self) -> int | None:
        """Skip blanks and an optional comment up to the line end; return the comment's offset."""
        self._skip_blanks()
        comment_start = None
        if self.position < len(self.text) and self.text[self.position] == "#":
            comment_start = self.position
            self._read_comment()
        return comment_start

    def _skip_string(self) -> None:
        """Move past a string starting at the current position, counting its newlines."""
        text = self.text
        quote = text[self.position]
        if text.startswith(quote * 3, self.position):
            end = self.position + 3
            while True:
                if quote == '"' and text[end] == "\\":
                    end += 2
                    continue
                if text.startswith(quote * 3, end):
                    # Up to two extra quotes right before the closing three belong to the string.
                    end += 3
                    while end < len(text) and text[end] == quote:
                        end += 1
                    break
                end += 1
            self.line += text.count("\n", self.position, end)
            self.position = end
            return
        end = self.position + 1
        while text[end] != quote:
            end += 2 if quote == '"' and text[end] == "\\" else 1
        self.position = end + 1

    def _read_key(self) -> tuple[int, int]:
        """Move past a dotted key; return the start and end offsets of its last part."""
        text = self.text
        while True:
            self._skip_blanks()
            part_start = self.position
            if text[self.position] in "\"'":
                self._skip_string()
            else:
                while text[self.position] in _BARE_KEY_CHARACTERS:
                    self.position += 1
            part_end = self.position
            self._skip_blanks()
            if text[self.position] != ".":
                return part_start, part_end
            self.position += 1

    # Statements.

    def _read_header(self) -> None:
        text = self.text
        is_array = text.startswith("[[", self.position)
        self.position += 2 if is_array else 1
        key_start = self.position
        self._read_key()
        raw = text[key_start : self.position]
        self.position += 2 if is_array else 1

        # A part that names an array of tables refers to its latest element, except for
        # the last part of an [[array]] header, which opens a new element.
        parts = _decode_key(raw)
        resolved: list[str | int] = []
        for index, part in enumerate(parts):
            resolved.append(part)
            count = self.array_counts.get(tuple(resolved))
            if count is not None and index < len(parts) - 1:
                resolved.append(count - 1)
        path = tuple(resolved)
        if is_array:
            count = self.array_counts.get(path, 0)
            self.array_counts[path] = count + 1
            path = (*path, count)
        self.table = path

    def _read_statement(self, line_start: int) -> None:
        text = self.text
        line = self.line
        key_start = self.position
        last_key_start, last_key_end = self._read_key()
        key = _decode_key(text[key_start:last_key_end])
        self._skip_blanks()
        self.position += 1  # the "="
        self._skip_blanks()

        value_start = self.position
        self._skip_value()
        value_end = self.position
        comment_start = self._finish_line()
        line_end = self.position
        self._skip_newline()

        self.result.statements.append(
            Statement(
                line=line,
                table=self.table,
                key=key,
                line_start=line_start,
                key_start=key_start,
                last_key_start=last_key_start,
                last_key_end=last_key_end,
                value_start=value_start,
                value_end=value_end,
                comment_start=comment_start,
                line_end=line_end,
            )
        )

    def _skip_value(self) -> None:
        """Move past one value, which may span lines inside brackets or multi-line strings."""
        text = self.text
        value_start = self.position
        depth = 0
        while self.position < len(text):
            character = text[self.position]
            if character in "\"'":
                self._skip_string()
            elif character in "[{":
                depth += 1
                self.position += 1
            elif character in "]}":
                depth -= 1
                self.position += 1
            elif depth > 0 and character == "#":
                self._read_comment()
            elif depth > 0 and character in "\r\n":
                self._skip_newline()
            elif depth == 0 and character == " " and self._is_date_time_gap(value_start):
                self.position += 1
            elif depth == 0 and character in " \t#\r\n":
                break
            else:
                self.position += 1

    def _is_date_time_gap(self, value_start: int) -> bool:
        """Tell whether the space at the current position separates a date from its time."""
        before = self.text[value_start : self.position]
        after = self.text[self.position + 1 : self.position + 3]
        return _DATE.fullmatch(before) is not None and after[:2].isdigit()
