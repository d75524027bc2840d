"""Unit tests of the Zig rewrite: config.zig declarations, config references, and rollback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.language import KEY_COMMENTS
from migrate.zig_rewrite import (
    ZigRewriteError,
    classify_zig,
    convert_config_zig,
    convert_zig_references,
    read_config_zig,
    revert_config_zig,
    revert_zig_references,
)

POOL_VALUES = {"initial_pool_size": 1024, "max_pool_size": 100000}

CHINESE_CONFIG = (
    "// ============ 连接池配置 ============\n"
    "\n"
    "pub const MAX_CLIENTS_POOL: usize = 100_000; // 启动时预分配的客户端对象数\n"
    "pub const MAX_CONNECTIONS: usize = 1_000_000;\n"
    "\n"
    "// ============ io_uring 配置 ============\n"
    "pub const IO_ENTRIES: u12 = 4095; // io_uring 队列深度\n"
)

MAIN_SOURCE = (
    'const std = @import("std");\n'
    'const config = @import("config.zig");\n'
    "\n"
    "pub fn start(pool: *Pool) !void {\n"
    "    try pool.preheat(config.MAX_CLIENTS_POOL);\n"
    '    std.log.info("preheated {d} clients", .{config.MAX_CLIENTS_POOL});\n'
    "}\n"
)


def convert(text: str, values: dict[str, int] | None = None) -> str | None:
    return convert_config_zig(text, values or POOL_VALUES, path="config.zig")


def raised(call, *args, **kwargs) -> ZigRewriteError:
    with pytest.raises(ZigRewriteError) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------- convert_config_zig


def test_convert_replaces_legacy_line_with_pool_lines():
    converted = convert(CHINESE_CONFIG)

    assert converted == CHINESE_CONFIG.replace(
        "pub const MAX_CLIENTS_POOL: usize = 100_000; // 启动时预分配的客户端对象数\n",
        "pub const INITIAL_POOL_SIZE: usize = 1_024; // 启动时预分配的客户端对象数\n"
        f"pub const MAX_POOL_SIZE: usize = 100_000; // {KEY_COMMENTS['zh']['max_pool_size']}\n",
    )


def test_convert_keeps_crlf_line_endings():
    text = CHINESE_CONFIG.replace("\n", "\r\n")

    converted = convert(text)

    assert converted is not None
    assert converted.count("\r\n") == text.count("\r\n") + 1
    assert "\n" not in converted.replace("\r\n", "")
    assert converted == convert(CHINESE_CONFIG).replace("\n", "\r\n")


def test_convert_keeps_missing_final_newline():
    text = "// pool settings\npub const MAX_CLIENTS_POOL = 100_000;"

    converted = convert(text)

    assert converted == (
        "// pool settings\n"
        f"pub const INITIAL_POOL_SIZE = 1_024; // {KEY_COMMENTS['en']['initial_pool_size']}\n"
        f"pub const MAX_POOL_SIZE = 100_000; // {KEY_COMMENTS['en']['max_pool_size']}"
    )


def test_convert_crlf_last_line_without_newline():
    text = "// pool settings\r\npub const MAX_CLIENTS_POOL = 100_000;"

    converted = convert(text)

    assert converted is not None
    assert converted.count("\r\n") == 2
    assert not converted.endswith("\n")


@pytest.mark.parametrize(
    ("legacy_line", "expected_initial", "expected_maximum"),
    [
        ("pub const MAX_CLIENTS_POOL: usize = 100_000;", "INITIAL_POOL_SIZE: usize = 1_024;", "MAX_POOL_SIZE: usize = 100_000;"),
        ("pub const MAX_CLIENTS_POOL = 100000;", "INITIAL_POOL_SIZE = 1024;", "MAX_POOL_SIZE = 100000;"),
        ("pub const MAX_CLIENTS_POOL: u32 = 0x1_86A0;", "INITIAL_POOL_SIZE: u32 = 0x400;", "MAX_POOL_SIZE: u32 = 0x1_86A0;"),
        ("pub const MAX_CLIENTS_POOL: usize = 10_0000;", "INITIAL_POOL_SIZE: usize = 1024;", "MAX_POOL_SIZE: usize = 10_0000;"),
        ("pub const MAX_CLIENTS_POOL: comptime_int = 0b1;", "INITIAL_POOL_SIZE: comptime_int = 0b10000000000;", "MAX_POOL_SIZE: comptime_int = 0b11000011010100000;"),
    ],
)
def test_convert_keeps_type_and_number_style(legacy_line, expected_initial, expected_maximum):
    converted = convert(legacy_line + "\n")

    assert converted is not None
    first, second = converted.splitlines()
    assert first.startswith("pub const " + expected_initial + " //")
    assert second.startswith("pub const " + expected_maximum + " //")


@pytest.mark.parametrize(
    ("legacy_line", "expected_added"),
    [
        (
            "pub const MAX_CLIENTS_POOL: usize = 0x1_86A0;",
            ["IO_ENTRIES: u12 = 4095;", "FORWARD_BATCH_SIZE: usize = 5000;"],
        ),
        (
            "pub const MAX_CLIENTS_POOL: usize = 0x1_86A0;\npub const MAX_CONNECTIONS: usize = 1_000_000;",
            ["IO_ENTRIES: u12 = 4_095;", "FORWARD_BATCH_SIZE: usize = 5_000;"],
        ),
    ],
)
def test_convert_writes_added_limits_in_decimal(legacy_line, expected_added):
    values = {**POOL_VALUES, "io_entries": 4095, "forward_batch_size": 5000}

    converted = convert(legacy_line + "\n", values)

    assert converted is not None
    assert "pub const MAX_POOL_SIZE: usize = 0x1_86A0;" in converted
    for declaration in expected_added:
        assert "pub const " + declaration in converted
    assert "0xFFF" not in converted
    assert "0x1388" not in converted


def test_convert_short_literal_borrows_number_style():
    text = "pub const MAX_CLIENTS_POOL: usize = 512;\npub const MAX_CONNECTIONS: usize = 1_000_000;\n"

    converted = convert(text, {"initial_pool_size": 256, "max_pool_size": 10000})

    assert converted is not None
    assert "pub const INITIAL_POOL_SIZE: usize = 256;" in converted
    assert "pub const MAX_POOL_SIZE: usize = 10_000;" in converted


def test_convert_keeps_indentation_and_comment_alignment():
    text = "    pub const MAX_CLIENTS_POOL: usize = 100_000;      // preallocated clients\r\n"

    converted = convert(text)

    assert converted == (
        "    pub const INITIAL_POOL_SIZE: usize = 1_024;      // preallocated clients\r\n"
        f"    pub const MAX_POOL_SIZE: usize = 100_000;      // {KEY_COMMENTS['en']['max_pool_size']}\r\n"
    )


@pytest.mark.parametrize(
    ("comments", "language"),
    [("// 连接池配置\n// 客户端对象\n", "zh"), ("// Pool settings for the broker\n", "en"), ("", "en")],
)
def test_convert_comments_new_lines_in_file_language(comments, language):
    text = comments + "pub const MAX_CLIENTS_POOL: usize = 100_000;\n"

    converted = convert(text)

    assert converted is not None
    assert f"1_024; // {KEY_COMMENTS[language]['initial_pool_size']}\n" in converted
    assert f"100_000; // {KEY_COMMENTS[language]['max_pool_size']}\n" in converted


def test_convert_updates_and_adds_limits():
    values = {
        "initial_pool_size": 512,
        "max_pool_size": 10000,
        "max_connections": 10000,
        "forward_batch_size": 2000,
        "io_entries": 2048,
    }

    converted = convert(CHINESE_CONFIG, values)

    assert converted == (
        "// ============ 连接池配置 ============\n"
        "\n"
        "pub const INITIAL_POOL_SIZE: usize = 512; // 启动时预分配的客户端对象数\n"
        f"pub const MAX_POOL_SIZE: usize = 10_000; // {KEY_COMMENTS['zh']['max_pool_size']}\n"
        f"pub const FORWARD_BATCH_SIZE: usize = 2_000; // {KEY_COMMENTS['zh']['forward_batch_size']}\n"
        "pub const MAX_CONNECTIONS: usize = 10_000;\n"
        "\n"
        "// ============ io_uring 配置 ============\n"
        "pub const IO_ENTRIES: u12 = 2_048; // io_uring 队列深度\n"
    )


def test_convert_adds_io_entries_as_u12():
    text = "pub const MAX_CLIENTS_POOL: usize = 100_000;\n"

    converted = convert(text, {**POOL_VALUES, "io_entries": 4095})

    assert converted is not None
    assert converted.splitlines()[2].startswith("pub const IO_ENTRIES: u12 = 4_095; //")


def test_convert_leaves_unchanged_limit_bytes_alone():
    text = "pub const MAX_CLIENTS_POOL = 100_000;\npub const MAX_CONNECTIONS = 0xF4240;\n"

    converted = convert(text, {**POOL_VALUES, "max_connections": 1_000_000})

    assert converted is not None
    assert converted.endswith("pub const MAX_CONNECTIONS = 0xF4240;\n")


def test_convert_ignores_name_in_comments_and_strings():
    text = (
        "/// MAX_CLIENTS_POOL is read once at startup.\n"
        "pub const MAX_CLIENTS_POOL: usize = 100_000; // MAX_CLIENTS_POOL objects\n"
        'pub const HELP = "set MAX_CLIENTS_POOL to size the pool";\n'
        "pub const USAGE =\n"
        "    \\\\MAX_CLIENTS_POOL: objects preallocated at startup\n"
        ";\n"
        "const tag = 'M'; // config.MAX_CLIENTS_POOL\n"
    )

    converted = convert(text)

    assert converted is not None
    assert converted.count("MAX_CLIENTS_POOL") == text.count("MAX_CLIENTS_POOL") - 1
    assert "pub const INITIAL_POOL_SIZE: usize = 1_024; // MAX_CLIENTS_POOL objects\n" in converted
    assert converted.startswith("/// MAX_CLIENTS_POOL is read once at startup.\n")


@pytest.mark.parametrize("new_name", ["INITIAL_POOL_SIZE", "MAX_POOL_SIZE"])
def test_convert_rejects_legacy_and_new_declarations_together(new_name):
    text = "pub const MAX_CLIENTS_POOL = 100_000;\n\n    pub const " + new_name + " = 1024;\n"

    error = raised(convert, text)

    assert (error.path, error.line, error.column) == ("config.zig", 3, 15)
    assert "declares both MAX_CLIENTS_POOL (line 1)" in str(error)
    assert str(error).startswith("config.zig:3:15: ")


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("pub const MAX_CLIENTS_POOL: usize =\n    100_000;\n", 1, 11, "spans several lines"),
        ("pub const MAX_CLIENTS_POOL = 100_000; pub const X = 1;\n", 1, 11, "shares its line"),
        ("pub var MAX_CLIENTS_POOL: usize = 100_000;\n", 1, 9, "is a `var`"),
        ("// pool\npub const MAX_CLIENTS_POOL: usize = 100 * 1000;\n", 2, 37, "`100 * 1000`"),
        ("pub const MAX_CLIENTS_POOL: usize = 1e5;\n", 1, 37, "not an integer literal"),
    ],
)
def test_convert_rejects_legacy_line_it_cannot_parse(text, line, column, problem):
    error = raised(convert, text)

    assert (error.line, error.column) == (line, column)
    assert problem in error.message


def test_convert_rejects_legacy_use_in_config():
    text = (
        "pub const MAX_CLIENTS_POOL: usize = 100_000;\n"
        "pub const MAX_CONNECTIONS: usize = MAX_CLIENTS_POOL * 10;\n"
    )

    error = raised(convert, text)

    assert (error.line, error.column) == (2, 36)
    assert "MAX_CONNECTIONS: usize = MAX_CLIENTS_POOL * 10;" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "pub const INITIAL_POOL_SIZE = 1024;\npub const MAX_POOL_SIZE = 100_000;\n",
        "pub const MAX_CONNECTIONS = 1_000_000;\n",
        "// MAX_CLIENTS_POOL was removed\n",
        "",
    ],
)
def test_convert_returns_none_without_legacy_declaration(text):
    assert convert(text) is None


def test_convert_ignores_nested_declaration():
    text = "const Limits = struct {\n    pub const MAX_CLIENTS_POOL = 10;\n};\n"

    assert convert(text) is None


@pytest.mark.parametrize(
    "values",
    [
        {"initial_pool_size": 1024},
        {**POOL_VALUES, "max_clients_pool": 5},
        {**POOL_VALUES, "max_connections": -1},
        {**POOL_VALUES, "io_entries": True},
    ],
)
def test_convert_rejects_invalid_values(values):
    with pytest.raises(ValueError):
        convert(CHINESE_CONFIG, values)


# ---------------------------------------------------------------- read_config_zig


def test_read_config_reads_integer_literals_of_settings():
    text = (
        "pub const MAX_CLIENTS_POOL: usize = 100_000; // 100_001\n"
        "pub const MAX_CONNECTIONS = 0xF4240;\n"
        "pub const IO_ENTRIES: u12 = 0o7777;\n"
        "pub const FORWARD_BATCH_SIZE: usize = 5 * 1000;\n"
        "const MAX_POOL_SIZE: usize = 7;\n"
        "pub const LISTEN_PORT: u16 = 1883;\n"
    )

    assert read_config_zig(text) == {
        "max_clients_pool": 100000,
        "max_connections": 1000000,
        "io_entries": 4095,
    }


# ---------------------------------------------------------------- references


def test_convert_references_rewrites_preheat_and_log_lines():
    converted = convert_zig_references(MAIN_SOURCE, path="main.zig")

    assert converted == MAIN_SOURCE.replace("config.MAX_CLIENTS_POOL", "config.INITIAL_POOL_SIZE")


def test_convert_references_handles_log_tuple_with_several_elements():
    text = (
        'const config = @import("config.zig");\n'
        "const log = std.log.scoped(.broker);\n"
        "fn report(started: i64) void {\n"
        '    log.warn("{d} objects in {d} ms (MAX_CLIENTS_POOL)", .{ config.MAX_CLIENTS_POOL, started });\n'
        '    std.debug.print("{d}\\n", .{config.MAX_CLIENTS_POOL});\n'
        "}\n"
    )

    converted = convert_zig_references(text, path="main.zig")

    assert converted is not None
    assert converted.count("config.INITIAL_POOL_SIZE") == 2
    assert '"{d} objects in {d} ms (MAX_CLIENTS_POOL)"' in converted


def test_convert_references_follows_import_alias():
    text = (
        'const cfg = @import("../config.zig");\n'
        "fn start(pool: *Pool) !void {\n"
        "    try pool.preheat(allocator, cfg.@\"MAX_CLIENTS_POOL\");\n"
        "}\n"
    )

    converted = convert_zig_references(text, path="src/main.zig")

    assert converted == text.replace('cfg.@"MAX_CLIENTS_POOL"', 'cfg.@"INITIAL_POOL_SIZE"')


@pytest.mark.parametrize(
    ("line_text", "column"),
    [
        ("var slots: [config.MAX_CLIENTS_POOL]Slot = undefined;", 17),
        ("if (live >= config.MAX_CLIENTS_POOL) return error.PoolFull;", 17),
        ("for (0..config.MAX_CLIENTS_POOL) |_| {}", 13),
        ("const pool_size = config.MAX_CLIENTS_POOL;", 23),
        ('std.log.info("{d}", .{config.MAX_CLIENTS_POOL * 2});', 27),
        ("try pool.preheat(config.MAX_CLIENTS_POOL / 2);", 22),
        ("try pool.grow(config.MAX_CLIENTS_POOL);", 19),
        ('try pool.preheat(@import("config.zig").MAX_CLIENTS_POOL);', 44),
        ("try pool.preheat(settings.config.MAX_CLIENTS_POOL);", 38),
        ("const copy = .{ .MAX_CLIENTS_POOL = 5 };", 22),
    ],
)
def test_convert_references_rejects_unsafe_use(line_text, column):
    text = 'const config = @import("config.zig");\nfn start() !void {\n    ' + line_text + "\n}\n"

    error = raised(convert_zig_references, text, path="main.zig")

    assert (error.path, error.line, error.column) == ("main.zig", 3, column)
    assert line_text in error.message
    assert "config.INITIAL_POOL_SIZE or config.MAX_POOL_SIZE" in error.message


def test_convert_references_writes_nothing_for_comments_and_strings():
    text = (
        "// config.MAX_CLIENTS_POOL is gone\n"
        'const hint = "config.MAX_CLIENTS_POOL";\n'
        "const usage =\n"
        "    \\\\config.MAX_CLIENTS_POOL\n"
        ";\n"
    )

    assert convert_zig_references(text, path="main.zig") is None


def test_convert_references_ignores_local_constant_of_same_name():
    text = "fn f() usize {\n    const MAX_CLIENTS_POOL = 4;\n    return MAX_CLIENTS_POOL;\n}\n"

    assert convert_zig_references(text, path="main.zig") is None


def test_revert_references_restores_original():
    converted = convert_zig_references(MAIN_SOURCE, path="main.zig")

    assert revert_zig_references(converted, path="main.zig") == MAIN_SOURCE


def test_revert_references_rewrites_max_pool_size_anywhere():
    text = 'const config = @import("config.zig");\nvar slots: [config.MAX_POOL_SIZE]Slot = undefined;\n'

    reverted = revert_zig_references(text, path="main.zig")

    assert reverted == text.replace("MAX_POOL_SIZE", "MAX_CLIENTS_POOL")


def test_revert_references_rejects_unsafe_initial_size():
    text = 'const config = @import("config.zig");\nconst low = live < config.INITIAL_POOL_SIZE;\n'

    error = raised(revert_zig_references, text, path="main.zig")

    assert (error.line, error.column) == (2, 20)
    assert "INITIAL_POOL_SIZE" in error.message


def test_revert_references_returns_none_without_reference():
    assert revert_zig_references("const std = @import(\"std\");\n", path="main.zig") is None


# ---------------------------------------------------------------- revert_config_zig


ROUND_TRIP_CASES = {
    "chinese banners": CHINESE_CONFIG,
    "crlf": CHINESE_CONFIG.replace("\n", "\r\n"),
    "no final newline": "// pool\npub const MAX_CLIENTS_POOL: usize = 100_000;",
    "crlf without final newline": "// pool\r\npub const MAX_CLIENTS_POOL = 100_000; // objects",
    "untyped without comment": "pub const MAX_CLIENTS_POOL = 100000;\n",
    "trailing spaces": "pub const MAX_CLIENTS_POOL = 100000;   \n// tail\n",
    "hex": "pub const MAX_CLIENTS_POOL: u32 = 0x1_86A0; // hex\n",
    "indented": "const Settings = struct {};\n  pub const MAX_CLIENTS_POOL: usize = 100_000;\n",
    "only line": "pub const MAX_CLIENTS_POOL: usize = 100_000;",
}


@pytest.mark.parametrize("text", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
def test_revert_config_restores_original_bytes(text):
    converted = convert(text)

    assert converted is not None
    assert revert_config_zig(converted, path="config.zig") == text


def test_revert_config_keeps_added_limit_lines():
    text = "pub const MAX_CLIENTS_POOL: usize = 100_000;\n"
    converted = convert(text, {**POOL_VALUES, "max_connections": 1_000_000})

    reverted = revert_config_zig(converted, path="config.zig")

    assert reverted is not None
    assert reverted.startswith(text)
    assert reverted.splitlines()[1].startswith("pub const MAX_CONNECTIONS: usize = 1_000_000; //")


def test_revert_config_merges_lines_apart():
    text = (
        "pub const INITIAL_POOL_SIZE = 512; // preheated\n"
        "pub const MAX_CONNECTIONS = 10_000;\n"
        "pub const MAX_POOL_SIZE = 10_000;"
    )

    reverted = revert_config_zig(text, path="config.zig")

    assert reverted == "pub const MAX_CLIENTS_POOL = 10_000; // preheated\npub const MAX_CONNECTIONS = 10_000;"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("pub const INITIAL_POOL_SIZE = 512;\n", 1, 11),
        ("// pool\npub const MAX_POOL_SIZE = 10_000;\n", 2, 11),
    ],
)
def test_revert_config_rejects_half_converted_file(text, line, column):
    error = raised(revert_config_zig, text, path="config.zig")

    assert (error.line, error.column) == (line, column)


def test_revert_config_rejects_other_use_of_new_names():
    text = (
        "pub const INITIAL_POOL_SIZE = 512;\n"
        "pub const MAX_POOL_SIZE = 10_000;\n"
        "comptime {\n"
        "    if (INITIAL_POOL_SIZE > MAX_POOL_SIZE) @compileError(\"pool sizes\");\n"
        "}\n"
    )

    error = raised(revert_config_zig, text, path="config.zig")

    assert (error.line, error.column) == (4, 9)


def test_revert_config_returns_none_for_legacy_file():
    assert revert_config_zig(CHINESE_CONFIG, path="config.zig") is None


@given(
    indent=st.sampled_from(["", "    ", "\t"]),
    typed=st.sampled_from(["", ": usize", ":u32", " : comptime_int"]),
    legacy_value=st.integers(min_value=1, max_value=10**7),
    literal_style=st.sampled_from(["plain", "grouped", "hex"]),
    comment=st.sampled_from(["", " // 预分配", "   // preallocated objects", "// x"]),
    trailing=st.sampled_from(["", "  "]),
    line_break=st.sampled_from(["\n", "\r\n"]),
    final_newline=st.booleans(),
    initial=st.integers(min_value=1, max_value=10**6),
)
def test_revert_config_inverts_convert(
    indent, typed, legacy_value, literal_style, comment, trailing, line_break, final_newline, initial
):
    literal = {"plain": str(legacy_value), "grouped": f"{legacy_value:_}", "hex": hex(legacy_value)}[literal_style]
    line = f"{indent}pub const MAX_CLIENTS_POOL{typed} = {literal};{comment or trailing}"
    text = "// settings" + line_break + line + (line_break if final_newline else "")

    converted = convert(text, {"initial_pool_size": initial, "max_pool_size": legacy_value})

    assert converted is not None
    assert read_config_zig(converted)["max_pool_size"] == legacy_value
    assert read_config_zig(converted)["initial_pool_size"] == initial
    assert revert_config_zig(converted, path="config.zig") == text


# ---------------------------------------------------------------- classify_zig


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHINESE_CONFIG, "legacy-config"),
        ("pub const INITIAL_POOL_SIZE = 512;\npub const MAX_POOL_SIZE = 10_000;\n", "converted-config"),
        ("pub const MAX_POOL_SIZE = 10_000;\n", "converted-config"),
        ("pub const MAX_CLIENTS_POOL = 1;\npub const INITIAL_POOL_SIZE = 1;\n", "conflict"),
        (MAIN_SOURCE, "legacy-references"),
        (MAIN_SOURCE.replace("MAX_CLIENTS_POOL", "INITIAL_POOL_SIZE"), "converted-references"),
        ("const config = @import(\"config.zig\");\nconst n = config.MAX_CLIENTS_POOL;\n", "legacy-references"),
        ("const config = @import(\"config.zig\");\nconst MAX_CLIENTS_POOL = config.MAX_CLIENTS_POOL;\n", "legacy-references"),
        ("// config.MAX_CLIENTS_POOL\nconst s = \"config.INITIAL_POOL_SIZE\";\n", "none"),
        ("const std = @import(\"std\");\n", "none"),
    ],
)
def test_classify_zig(text, expected):
    assert classify_zig(text) == expected
