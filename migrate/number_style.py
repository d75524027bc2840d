"""Decide how a converter writes decimal integers, so TOML and Zig files follow one rule.

The rule applies when a file writes any decimal integer of 5 or more digits with `_`
separators (`100_000`). Then every number the converter writes with 4 or more digits gets
separators in groups of the same size, counted from the right (`1_024`, `5_000`). The group
size is that of the first such number, which is 3 in `100_000` and 4 in `10_0000`.
Otherwise numbers are written as plain digits. A value equal to the literal it replaces
keeps that literal's spelling, so a rollback can give back the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Fewer digits than this show no grouping habit: `1_000` may just as well be a one-off.
SEPARATED_MIN_DIGITS = 5
# Numbers with fewer digits than this are always written plain (`512`, not `512` grouped).
GROUPED_MIN_DIGITS = 4

_SEPARATED_DECIMAL = re.compile(r"[+-]?\d+(?:_\d+)+")
_PLAIN_OR_SEPARATED_DECIMAL = re.compile(r"[+-]?\d+(?:_\d+)*")


def separator_group(literals: Iterable[str]) -> int:
    """Return the digit group size of the file's first separated number of 5+ digits, or 0."""
    for literal in literals:
        if not _SEPARATED_DECIMAL.fullmatch(literal):
            continue
        digits = literal.lstrip("+-")
        if len(digits.replace("_", "")) >= SEPARATED_MIN_DIGITS:
            return len(digits) - digits.rfind("_") - 1
    return 0


def format_decimal(value: int, group: int) -> str:
    """Write `value` in decimal, with `_` every `group` digits from the right when it has 4+ digits."""
    sign = "-" if value < 0 else ""
    digits = str(abs(value))
    if group <= 0 or len(digits) < GROUPED_MIN_DIGITS:
        return sign + digits
    groups = []
    while len(digits) > group:
        groups.insert(0, digits[-group:])
        digits = digits[:-group]
    return sign + "_".join([digits, *groups])


def decimal_value(literal: str) -> int | None:
    """Return the value of a plain or `_`-separated decimal literal, or None for anything else."""
    if not _PLAIN_OR_SEPARATED_DECIMAL.fullmatch(literal):
        return None
    return int(literal.replace("_", ""))


def write_number(value: int, group: int, replaced: str | None = None) -> str:
    """Write `value` by the rule, keeping the spelling of the `replaced` literal when it has the same value."""
    if replaced is not None and decimal_value(replaced) == value:
        return replaced
    return format_decimal(value, group)
