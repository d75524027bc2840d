"""Find the settings that apply to one broker in a TOML file that may describe several.

Each table that contains the legacy key is one unit, the settings of one broker. A setting of
that unit is looked up in this order, and the broker's defaults apply when none has it:

1. the table itself;
2. its enclosing tables, innermost first (in a fleet file, the `[[brokers]]` element);
3. other tables that are not inside another unit's table, in the same array-of-tables
   element first, then in the enclosing elements, then outside every array.

So a `[pool]` table and a `[limits]` table beside it describe one broker, while two
`[[brokers]]` elements never borrow each other's keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.config import LEGACY_POOL_KEY
from migrate.toml_scan import Statement

TablePath = tuple[str | int, ...]


def statement_value(document: Mapping[str, Any], statement: Statement) -> Any:
    """Return the value a statement sets, read from the parsed document."""
    node: Any = document
    for part in (*statement.path, statement.key[-1]):
        node = node[part]
    return node


def element_scope(path: TablePath) -> TablePath:
    """Return the path of the innermost array-of-tables element that contains `path`, or ()."""
    for index in range(len(path) - 1, -1, -1):
        if isinstance(path[index], int):
            return path[: index + 1]
    return ()


def _enclosing_scopes(path: TablePath) -> list[TablePath]:
    """Return the array-of-tables elements around `path`, innermost first, ending with ()."""
    scopes = []
    scope = element_scope(path)
    while scope:
        scopes.append(scope)
        scope = element_scope(scope[:-2])
    scopes.append(())
    return scopes


def _rank(statement_path: TablePath, table: TablePath, scopes: list[TablePath], legacy_tables: set[TablePath]) -> tuple[int, int] | None:
    """Return how closely a statement's table belongs to the unit at `table`: lower wins, and None means never."""
    if statement_path == table:
        return (0, 0)
    if table[: len(statement_path)] == statement_path:
        return (1, len(table) - len(statement_path))
    # A table inside another unit's table belongs to that unit.
    for legacy in legacy_tables:
        if statement_path[: len(legacy)] == legacy and table[: len(legacy)] != legacy:
            return None
    scope = element_scope(statement_path)
    if scope in scopes:
        return (2, scopes.index(scope))
    return None


def unit_statements(statements: Iterable[Statement], table: TablePath, names: Iterable[str]) -> dict[str, Statement]:
    """Return, for each of `names`, the statement that sets it for the unit at `table`.

    A name missing from the result takes the broker's default. Between two statements
    of the same rank, the first in the file wins.
    """
    statements = list(statements)
    wanted = set(names)
    legacy_tables = {s.path for s in statements if s.name == LEGACY_POOL_KEY}
    scopes = _enclosing_scopes(table)
    chosen: dict[str, tuple[tuple[int, int], Statement]] = {}
    for statement in statements:
        if statement.name not in wanted:
            continue
        rank = _rank(statement.path, table, scopes, legacy_tables)
        if rank is None:
            continue
        best = chosen.get(statement.name)
        if best is None or rank < best[0]:
            chosen[statement.name] = (rank, statement)
    return {name: statement for name, (_, statement) in chosen.items()}
