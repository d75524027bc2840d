"""Convert the example legacy Zig broker and check the result with the real Zig compiler.

`zig ast-check` is fast and runs on every rewritten file. A single `zig run` builds a probe
program against the converted config.zig and main_async.zig and prints what they hold.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.zig_rewrite import (
    classify_zig,
    convert_config_zig,
    convert_zig_references,
    read_config_zig,
    revert_config_zig,
    revert_zig_references,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "zig"

# A cold `zig run` first builds the standard library pieces it needs into the cache. That
# took about 8 s on two cores here, and one ast-check well under 1 s.
ZIG_TIMEOUT_S = 300

LIMIT_VALUES = {
    "initial_pool_size": 512,
    "max_pool_size": 10000,
    "max_connections": 10000,
    "io_entries": 2048,
    "forward_batch_size": 1000,
}

PROBE = """\
const std = @import("std");
const config = @import("config.zig");
const trimmed = @import("trimmed/config.zig");
const broker = @import("main_async.zig");

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    var pool = try broker.startClientPool(gpa.allocator());
    defer pool.deinit();

    std.debug.print("INITIAL_POOL_SIZE={d}\\n", .{config.INITIAL_POOL_SIZE});
    std.debug.print("MAX_POOL_SIZE={d}\\n", .{config.MAX_POOL_SIZE});
    std.debug.print("MAX_CONNECTIONS={d}\\n", .{config.MAX_CONNECTIONS});
    std.debug.print("IO_ENTRIES={d}\\n", .{config.IO_ENTRIES});
    std.debug.print("FORWARD_BATCH_SIZE={d}\\n", .{config.FORWARD_BATCH_SIZE});
    std.debug.print("preheated={d}\\n", .{pool.free_count});
    std.debug.print("forward_batches_for_2500={d}\\n", .{broker.forwardBatchCount(2500)});
    std.debug.print("trimmed.IO_ENTRIES={d}\\n", .{trimmed.IO_ENTRIES});
    std.debug.print("trimmed.IO_ENTRIES_type={s}\\n", .{@typeName(@TypeOf(trimmed.IO_ENTRIES))});
    std.debug.print("trimmed.FORWARD_BATCH_SIZE={d}\\n", .{trimmed.FORWARD_BATCH_SIZE});
}
"""

# Conversions whose output must still parse: line endings, literals, types, comments.
TRICKY_CONFIGS = {
    "crlf.zig": "// 连接池\r\npub const MAX_CLIENTS_POOL: usize = 100_000; // 预分配\r\n",
    "no_final_newline.zig": "pub const MAX_CONNECTIONS = 1_000_000;\npub const MAX_CLIENTS_POOL = 100000;",
    "hex.zig": "pub const MAX_CLIENTS_POOL: u32 = 0x1_86A0;\n",
    "strings.zig": (
        'pub const HELP = "MAX_CLIENTS_POOL";\n'
        "pub const USAGE =\n"
        "    \\\\MAX_CLIENTS_POOL\n"
        ";\n"
        "pub const MAX_CLIENTS_POOL: usize = 100_000; // MAX_CLIENTS_POOL\n"
    ),
}


@pytest.fixture(scope="module")
def zig_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zig-cache")


def run_zig(arguments: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ZIG_GLOBAL_CACHE_DIR": str(cache / "global"),
        "ZIG_LOCAL_CACHE_DIR": str(cache / "local"),
    }
    return subprocess.run(
        [sys.executable, "-m", "ziglang", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=ZIG_TIMEOUT_S,
        check=False,
    )


def assert_ast_check(path: Path, cache: Path) -> None:
    result = run_zig(["ast-check", path.name], path.parent, cache)
    assert result.returncode == 0, f"zig ast-check {path} failed:\n{result.stderr}"


def read_exact(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def write_exact(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def convert_folder(folder: Path, values: dict[str, int]) -> dict[str, str]:
    """Convert every .zig file in a folder and return the original text of each changed one."""
    originals = {}
    for path in sorted(folder.glob("*.zig")):
        text = read_exact(path)
        kind = classify_zig(text)
        if kind == "legacy-config":
            converted = convert_config_zig(text, values, path=str(path))
        elif kind == "legacy-references":
            converted = convert_zig_references(text, path=str(path))
        else:
            continue
        assert converted is not None
        write_exact(path, converted)
        originals[path.name] = text
    return originals


def test_example_sources_pass_ast_check(zig_cache):
    sources = sorted(EXAMPLES.glob("*.zig"))

    assert [path.name for path in sources] == ["client_pool.zig", "config.zig", "main_async.zig"]
    for path in sources:
        assert_ast_check(path, zig_cache)


def test_converted_examples_pass_ast_check_and_revert_exactly(tmp_path, zig_cache):
    shutil.copytree(EXAMPLES, tmp_path, dirs_exist_ok=True)
    legacy_size = read_config_zig(read_exact(tmp_path / "config.zig"))["max_clients_pool"]

    originals = convert_folder(tmp_path, {"initial_pool_size": 1024, "max_pool_size": legacy_size})

    assert sorted(originals) == ["config.zig", "main_async.zig"]
    for name in originals:
        assert_ast_check(tmp_path / name, zig_cache)
    assert classify_zig(read_exact(tmp_path / "config.zig")) == "converted-config"
    assert classify_zig(read_exact(tmp_path / "main_async.zig")) == "converted-references"
    assert "// ============ 连接池配置 ============\n" in read_exact(tmp_path / "config.zig")

    reverted_config = revert_config_zig(read_exact(tmp_path / "config.zig"), path="config.zig")
    reverted_main = revert_zig_references(read_exact(tmp_path / "main_async.zig"), path="main_async.zig")
    assert reverted_config == originals["config.zig"]
    assert reverted_main == originals["main_async.zig"]


@pytest.mark.parametrize("name", TRICKY_CONFIGS)
def test_converted_tricky_configs_pass_ast_check(name, tmp_path, zig_cache):
    path = tmp_path / name
    converted = convert_config_zig(TRICKY_CONFIGS[name], LIMIT_VALUES, path=name)
    assert converted is not None
    write_exact(path, converted)

    assert_ast_check(path, zig_cache)
    assert revert_config_zig(converted, path=name) is not None


def test_converted_broker_builds_and_prints_new_settings(tmp_path, zig_cache):
    shutil.copytree(EXAMPLES, tmp_path, dirs_exist_ok=True)
    trimmed_folder = tmp_path / "trimmed"
    trimmed_folder.mkdir()
    lines = read_exact(tmp_path / "config.zig").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(("pub const IO_ENTRIES", "pub const FORWARD_BATCH_SIZE"))]
    assert len(kept) == len(lines) - 2
    write_exact(trimmed_folder / "config.zig", "".join(kept))

    convert_folder(tmp_path, LIMIT_VALUES)
    convert_folder(trimmed_folder, LIMIT_VALUES)
    write_exact(tmp_path / "probe.zig", PROBE)
    result = run_zig(["run", "probe.zig"], tmp_path, zig_cache)

    assert result.returncode == 0, f"zig run probe.zig failed:\n{result.stderr}"
    printed = dict(re.findall(r"^([\w.]+)=(\S+)$", result.stderr, flags=re.MULTILINE))
    assert printed == {
        "INITIAL_POOL_SIZE": "512",
        "MAX_POOL_SIZE": "10000",
        "MAX_CONNECTIONS": "10000",
        "IO_ENTRIES": "2048",
        "FORWARD_BATCH_SIZE": "1000",
        "preheated": "512",
        "forward_batches_for_2500": "3",
        "trimmed.IO_ENTRIES": "2048",
        "trimmed.IO_ENTRIES_type": "u12",
        "trimmed.FORWARD_BATCH_SIZE": "1000",
    }
