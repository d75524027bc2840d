"""Apply span edits to a file's text, leaving every byte outside the spans as it was."""

from __future__ import annotations

# An edit replaces text[start:end] by its replacement text.
Edit = tuple[int, int, str]


def apply_edits(text: str, edits: list[Edit]) -> str:
    """Replace each (start, end) span of `text` by its replacement; raise AssertionError when spans overlap."""
    pieces = []
    position = 0
    for start, end, replacement in sorted(edits):
        if start < position:
            raise AssertionError(f"overlapping edits at offset {start}")
        pieces.append(text[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)
