"""Read Zig source: tokens, integer literals, top-level declarations and references to config.

The tokenizer covers just enough of Zig's lexical grammar (line comments, string, character
and multiline string literals, quoted identifiers, numbers) that a name inside a comment or
a string is never taken for code. Zig has no block comments.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# Token kinds that are not code: their text is never searched for names.
NON_CODE_KINDS = frozenset({"comment", "string", "char", "multiline_string"})

_TOKEN_PATTERN = re.compile(
    r"""
      (?P<comment>//[^\r\n]*)
    | (?P<multiline_string>\\\\[^\r\n]*)
    | (?P<string>"(?:[^"\\\r\n]|\\[^\r\n])*"?)
    | (?P<char>'(?:[^'\\\r\n]|\\[^\r\n])*'?)
    | (?P<quoted_identifier>@"(?:[^"\\\r\n]|\\[^\r\n])*"?)
    | (?P<builtin>@[A-Za-z_][A-Za-z0-9_]*)
    | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>
          0x[0-9A-Fa-f_]*(?:\.[0-9A-Fa-f][0-9A-Fa-f_]*)?(?:[pP][-+]?[0-9_]+)?
        | 0o[0-7_]*
        | 0b[01_]*
        | [0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][-+]?[0-9_]+)?
      )
    | (?P<space>[\s\ufeff]+)
    | (?P<symbol>\.\.\.|\.\.|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_INTEGER_PATTERNS = {
    16: re.compile(r"0x[0-9A-Fa-f](?:_?[0-9A-Fa-f])*"),
    8: re.compile(r"0o[0-7](?:_?[0-7])*"),
    2: re.compile(r"0b[01](?:_?[01])*"),
    10: re.compile(r"[0-9](?:_?[0-9])*"),
}
_PREFIXES = {16: "0x", 8: "0o", 2: "0b", 10: ""}


@dataclass(frozen=True)
class Token:
    """One token: its kind, its span and text, and for identifiers the name and its span.

    A quoted identifier `@"NAME"` has kind "identifier", name NAME and a name span that
    covers NAME alone, so a rewrite can keep the `@"…"` around it.
    """

    kind: str
    start: int
    end: int
    text: str
    name: str = ""
    name_start: int = 0
    name_end: int = 0


def tokenize(text: str) -> list[Token]:
    """Split Zig source into tokens, whitespace left out, comments and literals kept."""
    tokens: list[Token] = []
    for match in _TOKEN_PATTERN.finditer(text):
        kind = match.lastgroup
        start, end = match.span()
        if kind == "space":
            continue
        if kind == "identifier":
            tokens.append(Token("identifier", start, end, match.group(), match.group(), start, end))
        elif kind == "quoted_identifier":
            closing = 1 if match.group().endswith('"') and end - start > 2 else 0
            name_start, name_end = start + 2, end - closing
            name = text[name_start:name_end]
            tokens.append(Token("identifier", start, end, match.group(), name, name_start, name_end))
        else:
            tokens.append(Token(kind, start, end, match.group()))
    return tokens


class LineIndex:
    """Map offsets in a text to 1-based line and column numbers, and back to line spans."""

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [index + 1 for index, char in enumerate(text) if char == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        """Return the 1-based line and column (in characters) of an offset."""
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def line_span(self, offset: int) -> tuple[int, int, str]:
        """Return the start and end (line break excluded) of the line at an offset, and its line break."""
        line = bisect.bisect_right(self.line_starts, offset)
        start = self.line_starts[line - 1]
        newline = self.text.find("\n", start)
        if newline == -1:
            return start, len(self.text), ""
        if newline > start and self.text[newline - 1] == "\r":
            return start, newline - 1, "\r\n"
        return start, newline, "\n"

    def first_line_break(self) -> str:
        """Return the line break the text uses first, or "\\n" for a text of one line."""
        newline = self.text.find("\n")
        if newline > 0 and self.text[newline - 1] == "\r":
            return "\r\n"
        return "\n"


@dataclass(frozen=True)
class NumberStyle:
    """Spelling of an integer literal: base, case of hex digits and underscore grouping."""

    base: int = 10
    uppercase: bool = False
    group: int = 0  # digits between underscores, counted from the right; 0 for none


def parse_integer(literal: str) -> int | None:
    """Return the value of a Zig integer literal such as 100_000 or 0x1_86A0, or None."""
    for base, pattern in _INTEGER_PATTERNS.items():
        if pattern.fullmatch(literal):
            digits = literal[len(_PREFIXES[base]) :].replace("_", "")
            return int(digits, base)
    return None


def style_of(literal: str) -> NumberStyle | None:
    """Return the style of a Zig integer literal, or None when the text is not one."""
    if parse_integer(literal) is None:
        return None
    base = {"0x": 16, "0o": 8, "0b": 2}.get(literal[:2], 10)
    digits = literal[len(_PREFIXES[base]) :]
    group = len(digits) - digits.rfind("_") - 1 if "_" in digits else 0
    letters = [char for char in digits if char.isalpha()]
    uppercase = bool(letters) and all(char.isupper() for char in letters)
    return NumberStyle(base, uppercase, group)


def format_integer(value: int, style: NumberStyle) -> str:
    """Write a non-negative integer as a Zig literal in the given style."""
    if value < 0:
        raise ValueError(f"Zig settings are non-negative integers, got {value}.")
    digits = {16: f"{value:x}", 8: f"{value:o}", 2: f"{value:b}", 10: str(value)}[style.base]
    if style.uppercase:
        digits = digits.upper()
    if style.group:
        groups = []
        while len(digits) > style.group:
            groups.insert(0, digits[-style.group :])
            digits = digits[: -style.group]
        digits = "_".join([digits, *groups])
    return _PREFIXES[style.base] + digits


# Statement keywords that may stand before `const` or `var` in a declaration.
_DECLARATION_PREFIXES = frozenset({"pub", "export", "extern", "threadlocal", "comptime"})

# Calls that take the pool size as a plain argument.
PREHEAT_CALLS = frozenset({"preheat"})

# Formatting calls whose argument tuple only prints a value: std.log's info, warn, err and
# debug (also through std.log.scoped), std.debug.print and a writer's print.
LOG_CALLS = frozenset({"info", "warn", "err", "debug", "print"})

_OPENERS = "([{"
_CLOSERS = ")]}"


@dataclass(frozen=True)
class Declaration:
    """A `const` or `var` declaration with the spans a rewrite needs.

    The line span is that of the line holding the name; `line_end` includes the line break.
    """

    name: str
    public: bool
    mutable: bool
    name_token: Token
    type_span: tuple[int, int] | None
    value_start: int
    value_end: int
    value_text: str
    comment: Token | None
    line_start: int
    content_end: int
    line_break: str
    alone_on_line: bool
    reexport: bool

    @property
    def line_end(self) -> int:
        return self.content_end + len(self.line_break)

    def layout_problem(self) -> str | None:
        """Return why the declaration is not one plain `const` line, or None when it is."""
        if self.mutable:
            return "is a `var`, not a `const`"
        if not self.value_text:
            return "has no value"
        if not self.alone_on_line:
            return "spans several lines or shares its line with other code"
        return None


@dataclass(frozen=True)
class Reference:
    """A use of a config name: `config.NAME` (with its alias token) or another form.

    `context` is "preheat" for a whole argument of a preheat call, "log" for a whole
    element of a log call's argument tuple, and None for every other use.
    """

    token: Token
    start: int
    alias: Token | None
    context: str | None


class ZigSource:
    """A Zig file split into tokens, with its top-level declarations and config aliases."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.code = [token for token in self.tokens if token.kind not in NON_CODE_KINDS]
        self.lines = LineIndex(text)
        self._token_starts = [token.start for token in self.tokens]
        # Top-level declarations by name; a re-export such as
        # `const MAX_CLIENTS_POOL = config.MAX_CLIENTS_POOL;` is not one.
        self.declarations: dict[str, Declaration] = {}
        # Names declared anywhere in the file, so a bare use of one is a local constant.
        self.local_names: set[str] = set()
        # Names bound to `@import("config.zig")`; `config` counts even without the import.
        self.config_aliases: set[str] = {"config"}
        self._scan_declarations()

    def comment_texts(self) -> list[str]:
        """Return the text of every comment, without its `//`, `///` or `//!` marker."""
        return [token.text[2:].lstrip("/!") for token in self.tokens if token.kind == "comment"]

    def references(self, names: set[str]) -> list[Reference]:
        """Return every use of the names in code that is not a declaration or a local constant."""
        references = []
        for index, token in enumerate(self.code):
            if token.kind != "identifier" or token.name not in names:
                continue
            previous = self.code[index - 1] if index > 0 else None
            if previous is not None and previous.text == ".":
                alias = self._alias_before(index)
                if alias is None:
                    references.append(Reference(token, token.start, None, None))
                else:
                    context = self._context(index - 2, index)
                    references.append(Reference(token, alias.start, alias, context))
                continue
            if previous is not None and previous.text in ("const", "var"):
                continue
            if token.name not in self.local_names:
                references.append(Reference(token, token.start, None, None))
        return references

    def _scan_declarations(self) -> None:
        depth = 0
        for index, token in enumerate(self.code):
            if token.kind == "symbol":
                if token.text in _OPENERS:
                    depth += 1
                elif token.text in _CLOSERS:
                    depth = max(depth - 1, 0)
                continue
            if not self._starts_declaration(index):
                continue
            declaration = self._declaration(index)
            self.local_names.add(declaration.name)
            if self._imports_config(declaration):
                self.config_aliases.add(declaration.name)
            if depth == 0 and not declaration.reexport:
                self.declarations.setdefault(declaration.name, declaration)

    def _starts_declaration(self, index: int) -> bool:
        token = self.code[index]
        if token.text not in ("const", "var"):
            return False
        if index + 1 >= len(self.code) or self.code[index + 1].kind != "identifier":
            return False
        if index == 0:
            return True
        previous = self.code[index - 1]
        return previous.text in (";", "{", "}") or previous.text in _DECLARATION_PREFIXES

    def _declaration(self, index: int) -> Declaration:
        code = self.code
        keyword = code[index]
        public = index > 0 and code[index - 1].text == "pub"
        first = code[index - 1] if index > 0 and code[index - 1].text in _DECLARATION_PREFIXES else keyword
        name_token = code[index + 1]

        # Step 1: an optional type annotation runs up to `=` (or `;` for an extern).
        position = index + 2
        type_span = None
        if position < len(code) and code[position].text == ":":
            type_first = position + 1
            position = self._skip_to(type_first, "=;")
            if position > type_first:
                type_span = (code[type_first].start, code[position - 1].end)

        # Step 2: the value runs up to the `;` outside any bracket.
        value_start = value_end = name_token.end
        value_tokens: list[Token] = []
        if position < len(code) and code[position].text == "=":
            value_first = position + 1
            position = self._skip_to(value_first, ";")
            value_tokens = code[value_first:position]
            if value_tokens:
                value_start, value_end = value_tokens[0].start, value_tokens[-1].end
        semicolon = code[position] if position < len(code) and code[position].text == ";" else None

        # Step 3: the line must hold this declaration and at most a trailing comment.
        line_start, content_end, line_break = self.lines.line_span(name_token.start)
        comment = None
        alone = False
        if semicolon is not None:
            after = bisect.bisect_right(self._token_starts, semicolon.start)
            if after < len(self.tokens):
                candidate = self.tokens[after]
                if candidate.kind == "comment" and candidate.start < content_end:
                    comment = candidate
            line_first = bisect.bisect_left(self._token_starts, line_start)
            line_last = bisect.bisect_left(self._token_starts, content_end)
            on_line = self.tokens[line_first:line_last]
            expected_first = bisect.bisect_left(self._token_starts, first.start)
            expected_last = after + (1 if comment is not None else 0)
            alone = on_line == self.tokens[expected_first:expected_last]

        reexport = any(
            token.name == name_token.name and value_tokens[number - 1].text == "."
            for number, token in enumerate(value_tokens)
            if number > 0 and token.kind == "identifier"
        )
        return Declaration(
            name=name_token.name,
            public=public,
            mutable=keyword.text == "var",
            name_token=name_token,
            type_span=type_span,
            value_start=value_start,
            value_end=value_end,
            value_text=self.text[value_start:value_end],
            comment=comment,
            line_start=line_start,
            content_end=content_end,
            line_break=line_break,
            alone_on_line=alone,
            reexport=reexport,
        )

    def _skip_to(self, position: int, stops: str) -> int:
        """Return the index of the first stop symbol outside brackets, or where the scope closes."""
        depth = 0
        while position < len(self.code):
            text = self.code[position].text
            if self.code[position].kind == "symbol":
                if depth == 0 and text in stops:
                    return position
                if text in _OPENERS:
                    depth += 1
                elif text in _CLOSERS:
                    if depth == 0:
                        return position
                    depth -= 1
            position += 1
        return position

    def _imports_config(self, declaration: Declaration) -> bool:
        value = declaration.value_text.replace(" ", "")
        if not (value.startswith('@import("') and value.endswith('")')):
            return False
        imported = value[len('@import("') : -len('")')]
        return imported == "config.zig" or imported.endswith("/config.zig")

    def _alias_before(self, index: int) -> Token | None:
        """Return the alias token of `alias.NAME` when alias names the config module."""
        if index < 2:
            return None
        alias = self.code[index - 2]
        if alias.kind != "identifier" or alias.name not in self.config_aliases:
            return None
        if index >= 3 and self.code[index - 3].text == ".":
            return None
        return alias

    def _context(self, first: int, last: int) -> str | None:
        """Return "preheat" or "log" when code[first:last + 1] is a whole safe argument."""
        code = self.code
        before = code[first - 1].text if first > 0 else ""
        after = code[last + 1].text if last + 1 < len(code) else ""
        opener = self._enclosing_opener(first)
        if opener is None or opener == 0:
            return None

        if code[opener].text == "(" and before in ("(", ",") and after in (")", ","):
            callee = code[opener - 1]
            if callee.kind == "identifier" and callee.name in PREHEAT_CALLS:
                return "preheat"
            return None

        # An element of an anonymous tuple `.{ … }` passed straight to a log call.
        if code[opener].text != "{" or code[opener - 1].text != ".":
            return None
        if before not in ("{", ",") or after not in ("}", ","):
            return None
        tuple_dot = opener - 1
        call_opener = self._enclosing_opener(tuple_dot)
        if call_opener is None or call_opener == 0 or code[call_opener].text != "(":
            return None
        if code[tuple_dot - 1].text not in ("(", ","):
            return None
        callee = code[call_opener - 1]
        if callee.kind == "identifier" and callee.name in LOG_CALLS:
            return "log"
        return None

    def _enclosing_opener(self, position: int) -> int | None:
        depth = 0
        for index in range(position - 1, -1, -1):
            token = self.code[index]
            if token.kind != "symbol":
                continue
            if token.text in _CLOSERS:
                depth += 1
            elif token.text in _OPENERS:
                if depth == 0:
                    return index
                depth -= 1
        return None
