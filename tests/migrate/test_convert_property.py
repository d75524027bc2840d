"""Property: for generated legacy TOML documents, convert touches only pool lines and rollback undoes it."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from migrate.cli import app

POOL_NAMES = {"max_clients_pool", "initial_pool_size", "max_pool_size", "max_connections", "io_entries", "forward_batch_size"}
POOL_KEY_LINE = re.compile(
    r"^\s*(?:pool\.)?(max_clients_pool|initial_pool_size|max_pool_size|max_connections|io_entries|forward_batch_size)\s*=", re.I
)

keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k not in POOL_NAMES and k != "pool")
comments = st.text(alphabet=list("abc xyz#=\"'配置中文"), max_size=16).map(lambda text: "#" + text)
values = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(1000, 10**7).map(lambda n: f"{n:_}"),
    st.text(alphabet=list("ab #=中"), max_size=8).map(lambda text: f'"{text}"'),
    st.sampled_from(["true", "false", "1.5", "[1, 2]", "'lit'", "1979-05-27"]),
)


@st.composite
def statements(draw, names: list[str]) -> list[str]:
    """Draw one line per key, each maybe indented and maybe with an end-of-line comment, plus comments and blanks."""
    lines: list[str] = []
    for name in names:
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", draw(comments)])))
        indent = draw(st.sampled_from(["", "  ", "\t"]))
        line = f"{indent}{name} = {draw(values)}"
        if draw(st.booleans()):
            line += draw(st.sampled_from([" ", "  ", "\t"])) + draw(comments)
        lines.append(line)
    return lines


@st.composite
def legacy_documents(draw) -> str:
    top = draw(st.lists(keys, max_size=4, unique=True))
    table = draw(st.lists(keys, max_size=4, unique=True))
    top_lines = draw(statements(top))
    table_lines = draw(statements(table))

    name = draw(st.sampled_from(["max_clients_pool", "MAX_CLIENTS_POOL"]))
    number = draw(st.integers(1, 10**6))
    legacy = f"{name} = {draw(st.sampled_from([str(number), f'{number:_}']))}"
    if draw(st.booleans()):
        legacy += "  " + draw(comments)

    placement = draw(st.sampled_from(["top", "table", "dotted"]))
    if placement == "top":
        top_lines.insert(draw(st.integers(0, len(top_lines))), legacy)
    elif placement == "dotted":
        top_lines.insert(draw(st.integers(0, len(top_lines))), "pool." + legacy)
    else:
        table_lines.insert(draw(st.integers(0, len(table_lines))), legacy)
    lines = top_lines + (["", "[pool]", *table_lines] if placement == "table" else [])

    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines)
    return text + newline if draw(st.booleans()) else text


def _other_lines(text: str) -> list[str]:
    return [line for line in text.splitlines(keepends=True) if not POOL_KEY_LINE.match(line)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=legacy_documents())
def test_convert_then_rollback_is_identity(document: str) -> None:
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "broker.toml"
        original = document.encode("utf-8")
        path.write_bytes(original)

        converted = runner.invoke(app, ["convert", str(path)], catch_exceptions=False)
        assert converted.exit_code == 0, converted.output
        new_text = path.read_bytes().decode("utf-8")
        assert _other_lines(new_text) == _other_lines(document)
        assert "max_clients_pool" not in new_text.lower()

        rolled_back = runner.invoke(app, ["rollback", str(path)], catch_exceptions=False)
        assert rolled_back.exit_code == 0, rolled_back.output
        assert path.read_bytes() == original
        assert [p.name for p in Path(folder).iterdir()] == ["broker.toml"]
