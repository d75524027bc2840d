"""Rewrite Zig broker sources from the preallocated client pool to the dynamic pool, and back.

In `config.zig` the `MAX_CLIENTS_POOL` declaration becomes `INITIAL_POOL_SIZE` and
`MAX_POOL_SIZE`. Other files get `config.INITIAL_POOL_SIZE` in place of
`config.MAX_CLIENTS_POOL` where that is safe, which is in a preheat call or a log argument.
Only the edited lines change. Every other byte stays as it was, line breaks and a missing
final newline included, so callers must read and write the files without newline
translation (bytes, or `newline=""`).
"""

from __future__ import annotations

from collections.abc import Mapping

from migrate.language import KEY_COMMENTS, comment_language
from migrate.legacy_comment import comment_key
from migrate.number_style import format_decimal, separator_group
from migrate.text_edits import apply_edits
from migrate.zig_source import (
    Declaration,
    ZigSource,
    format_integer,
    parse_integer,
    style_of,
)

LEGACY_NAME = "MAX_CLIENTS_POOL"
INITIAL_NAME = "INITIAL_POOL_SIZE"
MAXIMUM_NAME = "MAX_POOL_SIZE"
POOL_KEYS = ("initial_pool_size", "max_pool_size")
LIMIT_KEYS = ("max_connections", "io_entries", "forward_batch_size")
SETTINGS_KEYS = ("max_clients_pool", *POOL_KEYS, *LIMIT_KEYS)

# The Zig broker hands IO_ENTRIES to io_uring as a u12 (at most 4095 entries), so an added
# IO_ENTRIES line gets that type whenever the pool lines carry a type annotation.
IO_ENTRIES_TYPE = "u12"


class ZigRewriteError(ValueError):
    """A Zig source that cannot be rewritten safely, with the file, line and column to fix."""

    def __init__(self, path: str, line: int, column: int, message: str):
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


def classify_zig(text: str) -> str:
    """Return how a Zig file declares or uses the pool settings.

    The classes are "conflict", "legacy-config", "converted-config", "legacy-references",
    "converted-references" and "none". A references file uses the names through the config
    module (`config.MAX_CLIENTS_POOL`) and declares neither.
    """
    source = ZigSource(text)
    legacy = LEGACY_NAME in source.declarations
    converted = INITIAL_NAME in source.declarations or MAXIMUM_NAME in source.declarations
    if legacy and converted:
        return "conflict"
    if legacy:
        return "legacy-config"
    if converted:
        return "converted-config"
    if source.references({LEGACY_NAME}):
        return "legacy-references"
    if source.references({INITIAL_NAME, MAXIMUM_NAME}):
        return "converted-references"
    return "none"


def read_config_zig(text: str) -> dict[str, int]:
    """Return the settings a config.zig declares at top level, by lower-case key.

    Only declarations whose value is an integer literal are read (100_000 gives 100000);
    a setting computed from an expression is left out.
    """
    source = ZigSource(text)
    settings: dict[str, int] = {}
    for key in SETTINGS_KEYS:
        declaration = source.declarations.get(key.upper())
        if declaration is None or not declaration.public:
            continue
        value = parse_integer(declaration.value_text)
        if value is not None:
            settings[key] = value
    return settings


def config_zig_settings(text: str) -> dict[str, tuple[int, int, str, str]]:
    """Return what read_config_zig reads, with where each value is written.

    Each key maps to (value, line, name, statement): the 1-based line of the name and the
    declaration from its name to its value (`MAX_CONNECTIONS: usize = 1_000_000`).
    """
    source = ZigSource(text)
    settings = {}
    for key, value in read_config_zig(text).items():
        declaration = source.declarations[key.upper()]
        line, _ = source.lines.position(declaration.name_token.start)
        statement = text[declaration.name_token.start : declaration.value_end]
        settings[key] = (value, line, declaration.name, statement)
    return settings


def convert_config_zig(text: str, values: Mapping[str, int], *, path: str) -> str | None:
    """Replace the MAX_CLIENTS_POOL declaration by INITIAL_POOL_SIZE and MAX_POOL_SIZE.

    `values` contains "initial_pool_size" and "max_pool_size", then optionally the limits
    ("max_connections", "io_entries", "forward_batch_size") in the order missing ones are
    added. Limits the file declares are updated in place. Returns None when the file has
    no legacy declaration, which includes an already converted file.
    """
    _check_values(values)
    source = ZigSource(text)
    _reject_conflict(source, path)
    legacy = source.declarations.get(LEGACY_NAME)
    if legacy is None:
        return None

    # Step 1: the legacy line must be one plain declaration, and nothing else may use it.
    legacy_value = parse_integer(legacy.value_text) if legacy.value_text else None
    _require_plain_line(source, legacy, path)
    if legacy_value is None:
        _raise_at(
            source, path, legacy.value_start,
            f"{LEGACY_NAME} has the value `{legacy.value_text}`, which is not an integer "
            "literal. Write it as a literal such as 100_000 and convert again.",
        )
    _reject_other_uses(source, {LEGACY_NAME}, legacy, path)

    # Step 2: the pool lines take the legacy line as their template.
    language = comment_language(source.comment_texts())
    group = _file_separator_group(source)
    legacy_comment = legacy.comment.text if legacy.comment else None
    comments = {key: _key_comment(language, key) for key in POOL_KEYS}
    if legacy_comment is not None:
        comments[comment_key(legacy_comment)] = legacy_comment
    new_lines = [
        _render_line(
            source, legacy, INITIAL_NAME,
            _literal(values["initial_pool_size"], group, legacy.value_text),
            comments["initial_pool_size"],
        ),
        _render_line(
            source, legacy, MAXIMUM_NAME,
            _literal(values["max_pool_size"], group, legacy.value_text),
            comments["max_pool_size"],
        ),
    ]

    # Step 3: limits the file declares change in place, missing ones follow the pool lines.
    edits: list[tuple[int, int, str]] = []
    for key, value in values.items():
        if key in POOL_KEYS:
            continue
        declaration = source.declarations.get(key.upper())
        if declaration is None:
            type_text = IO_ENTRIES_TYPE if key == "io_entries" else None
            # An added declaration replaces no literal, so it is decimal by the file's separator rule.
            literal = format_decimal(value, group)
            comment = _key_comment(language, key)
            new_lines.append(_render_line(source, legacy, key.upper(), literal, comment, type_text))
            continue
        edit = _update_value(source, declaration, value, group, path)
        if edit is not None:
            edits.append(edit)

    line_break = legacy.line_break or source.lines.first_line_break()
    block = line_break.join(new_lines) + legacy.line_break
    edits.append((legacy.line_start, legacy.line_end, block))
    return apply_edits(text, edits)


def convert_zig_references(text: str, *, path: str) -> str | None:
    """Rewrite config.MAX_CLIENTS_POOL to config.INITIAL_POOL_SIZE in preheat calls and log lines.

    Raises ZigRewriteError at the first other use, such as an array length, a loop bound,
    a comparison or an alias, because there the legacy value meant the ceiling as well.
    Returns None when the file has no reference.
    """
    source = ZigSource(text)
    references = source.references({LEGACY_NAME})
    if not references:
        return None
    for reference in references:
        if reference.context is None:
            _raise_at(
                source, path, reference.start,
                f"`{_line_excerpt(source, reference.start)}` uses {LEGACY_NAME} outside a "
                "preheat call or log argument. It cannot be rewritten safely there, because "
                "the legacy value was both the startup size and the pool ceiling. Replace it "
                f"by hand with config.{INITIAL_NAME} or config.{MAXIMUM_NAME} and convert again.",
            )
    edits = [(ref.token.name_start, ref.token.name_end, INITIAL_NAME) for ref in references]
    return apply_edits(text, edits)


def revert_config_zig(text: str, *, path: str) -> str | None:
    """Replace the INITIAL_POOL_SIZE and MAX_POOL_SIZE lines by one MAX_CLIENTS_POOL line.

    MAX_CLIENTS_POOL takes the MAX_POOL_SIZE value as written, on the line of
    INITIAL_POOL_SIZE, with the comment of either line that the conversion did not add. Limit
    lines stay, because the legacy broker reads them too. Returns None when the file is
    not converted.
    """
    source = ZigSource(text)
    _reject_conflict(source, path)
    initial = source.declarations.get(INITIAL_NAME)
    maximum = source.declarations.get(MAXIMUM_NAME)
    if initial is None and maximum is None:
        return None
    if initial is None or maximum is None:
        present, missing = (initial, MAXIMUM_NAME) if maximum is None else (maximum, INITIAL_NAME)
        _raise_at(
            source, path, present.name_token.start,
            f"{present.name} is declared but {missing} is not, so the legacy "
            f"{LEGACY_NAME} line cannot be rebuilt. Add the missing declaration or restore "
            "the file from its backup.",
        )
    _require_plain_line(source, initial, path)
    _require_plain_line(source, maximum, path)
    _reject_other_uses(source, {INITIAL_NAME, MAXIMUM_NAME}, initial, path, also=maximum)

    # Convert leaves the legacy comment on the pool line it describes and adds the others.
    generated = _generated_comments("initial_pool_size") | _generated_comments("max_pool_size")
    own_comments = [d.comment.text for d in (initial, maximum) if d.comment is not None and d.comment.text not in generated]
    comment = own_comments[0] if own_comments else None
    line = _render_line(source, initial, LEGACY_NAME, maximum.value_text, comment)

    # Adjacent lines merge into one; otherwise the MAX_POOL_SIZE line is deleted on its own.
    first, second = sorted((initial, maximum), key=lambda declaration: declaration.line_start)
    if second.line_start == first.line_end:
        edits = [(first.line_start, second.line_end, line + second.line_break)]
    else:
        edits = [
            (initial.line_start, initial.content_end, line),
            deletion_edit(source, maximum),
        ]
    return apply_edits(text, edits)


def revert_zig_references(text: str, *, path: str) -> str | None:
    """Rewrite config.INITIAL_POOL_SIZE in preheat calls and log lines back to config.MAX_CLIENTS_POOL.

    config.MAX_POOL_SIZE becomes config.MAX_CLIENTS_POOL wherever it appears, because the
    reverted MAX_CLIENTS_POOL carries the MAX_POOL_SIZE value. Any other use of
    INITIAL_POOL_SIZE raises ZigRewriteError. Returns None when the file has no reference.
    """
    source = ZigSource(text)
    references = source.references({INITIAL_NAME, MAXIMUM_NAME})
    if not references:
        return None
    for reference in references:
        exact = reference.alias is not None and reference.token.name == MAXIMUM_NAME
        if reference.context is None and not exact:
            _raise_at(
                source, path, reference.start,
                f"`{_line_excerpt(source, reference.start)}` uses {reference.token.name} "
                "outside a preheat call or log argument, and the legacy config has no "
                f"constant that means the same. Remove this use by hand, or restore the file "
                "from its backup, and roll back again.",
            )
    edits = [(ref.token.name_start, ref.token.name_end, LEGACY_NAME) for ref in references]
    return apply_edits(text, edits)


def _check_values(values: Mapping[str, int]) -> None:
    missing = [key for key in POOL_KEYS if key not in values]
    unknown = [key for key in values if key not in POOL_KEYS + LIMIT_KEYS]
    if missing or unknown:
        raise ValueError(
            f"Zig conversion values need {', '.join(POOL_KEYS)} and accept "
            f"{', '.join(LIMIT_KEYS)}; missing {missing or 'none'}, unknown {unknown or 'none'}."
        )
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Zig setting {key} must be a non-negative integer, got {value!r}.")


def _reject_conflict(source: ZigSource, path: str) -> None:
    legacy = source.declarations.get(LEGACY_NAME)
    converted = source.declarations.get(INITIAL_NAME) or source.declarations.get(MAXIMUM_NAME)
    if legacy is None or converted is None:
        return
    legacy_line, _ = source.lines.position(legacy.name_token.start)
    _raise_at(
        source, path, converted.name_token.start,
        f"the file declares both {LEGACY_NAME} (line {legacy_line}) and {converted.name}, so "
        f"it is neither legacy nor converted. Delete {LEGACY_NAME} if the file is converted, "
        f"or delete {INITIAL_NAME} and {MAXIMUM_NAME} if it is not, then run again.",
    )


def _require_plain_line(source: ZigSource, declaration: Declaration, path: str) -> None:
    problem = declaration.layout_problem()
    if problem is not None:
        _raise_at(
            source, path, declaration.name_token.start,
            f"the {declaration.name} declaration {problem}, so it cannot be rewritten. Write "
            f"it as `pub const {declaration.name}: usize = 100_000; // comment` on a line of "
            "its own and run again.",
        )


def _reject_other_uses(
    source: ZigSource,
    names: set[str],
    declaration: Declaration,
    path: str,
    also: Declaration | None = None,
) -> None:
    own_tokens = {declaration.name_token.start}
    if also is not None:
        own_tokens.add(also.name_token.start)
    for token in source.code:
        if token.kind == "identifier" and token.name in names and token.start not in own_tokens:
            _raise_at(
                source, path, token.start,
                f"`{_line_excerpt(source, token.start)}` uses {token.name}, which the rewrite "
                "removes from this file, so the file would no longer compile. Replace this "
                "use by hand and run again.",
            )


def _raise_at(source: ZigSource, path: str, offset: int, message: str) -> None:
    line, column = source.lines.position(offset)
    raise ZigRewriteError(path, line, column, message)


def _line_excerpt(source: ZigSource, offset: int) -> str:
    start, end, _ = source.lines.line_span(offset)
    return source.text[start:end].strip()


def _key_comment(language: str, key: str) -> str:
    return "// " + KEY_COMMENTS[language][key]


def _generated_comments(key: str) -> set[str]:
    return {_key_comment(language, key) for language in KEY_COMMENTS}


def _file_separator_group(source: ZigSource) -> int:
    """Return the digit group size the file writes decimal numbers with (see migrate.number_style)."""
    return separator_group(token.text for token in source.code if token.kind == "number")


def _format(value: int, group: int, like: str) -> str:
    """Write `value` in the base of the literal `like` when that is hex, octal or binary, else by the file's rule."""
    style = style_of(like)
    if style is not None and style.base != 10:
        return format_integer(value, style)
    return format_decimal(value, group)


def _literal(value: int, group: int, original: str) -> str:
    """Return the original literal when it has the value, so a round trip keeps its spelling."""
    if parse_integer(original) == value:
        return original
    return _format(value, group, original)


def _update_value(
    source: ZigSource, declaration: Declaration, value: int, group: int, path: str
) -> tuple[int, int, str] | None:
    if not declaration.value_text:
        _raise_at(
            source, path, declaration.name_token.start,
            f"{declaration.name} has no value to update. Give it one, such as "
            f"`pub const {declaration.name}: usize = {format_decimal(value, group)};`, and "
            "convert again.",
        )
    if parse_integer(declaration.value_text) == value:
        return None
    return declaration.value_start, declaration.value_end, _format(value, group, declaration.value_text)


def _render_line(
    source: ZigSource,
    template: Declaration,
    name: str,
    value_text: str,
    comment: str | None,
    type_text: str | None = None,
) -> str:
    """Return the template's line with another name, value, comment and optionally type.

    A template line without a comment gets ` // …` appended. Dropping a comment also drops
    one space before it, so a round trip restores the line exactly.
    """
    text = source.text
    token = template.name_token
    pieces = [text[template.line_start : token.name_start], name]
    if type_text is not None and template.type_span is not None:
        type_start, type_end = template.type_span
        pieces += [text[token.name_end : type_start], type_text, text[type_end : template.value_start]]
    else:
        pieces.append(text[token.name_end : template.value_start])
    pieces.append(value_text)

    if template.comment is not None:
        before_comment = text[template.value_end : template.comment.start]
        if comment is None:
            before_comment = before_comment.removesuffix(" ")
            pieces.append(before_comment)
        else:
            pieces += [before_comment, comment]
        pieces.append(text[template.comment.end : template.content_end])
    else:
        pieces.append(text[template.value_end : template.content_end])
        if comment is not None:
            pieces.append(" " + comment)
    return "".join(pieces)


def deletion_edit(source: ZigSource, declaration: Declaration) -> tuple[int, int, str]:
    """Return the edit that deletes a declaration's line, keeping a missing final newline missing."""
    if declaration.line_break or declaration.line_start == 0:
        return declaration.line_start, declaration.line_end, ""
    previous_break = "\r\n" if source.text[: declaration.line_start].endswith("\r\n") else "\n"
    return declaration.line_start - len(previous_break), declaration.content_end, ""

