"""Plan and apply `poolmigrate convert`: every file is computed and validated before any is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scenarios
from broker.config import LEGACY_POOL_KEY, LIMIT_KEYS, POOL_KEYS, check_pool
from migrate.discover import Target, expand_paths
from migrate.files import InputError, read_text, sha256
from migrate.journal import Journal, backup_path, journal_path
from migrate.results import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, FileResult
from migrate.toml_rewrite import TomlRewriteError, TomlSyntaxError, classify_toml, convert_toml, parse_toml, pool_values_at
from migrate.toml_scan import scan
from migrate.transaction import FileTransaction

_ZIG_LEGACY_DECLARATION = re.compile(r"^[ \t]*pub[ \t]+const[ \t]+MAX_CLIENTS_POOL\b", re.M)


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """The command-line choices that decide the values written."""

    scenario: str = "default"
    initial_pool_size: int | None = None
    max_pool_size: int | None = None
    keep_limits: bool = False
    backup: bool = True

    def target_values(self) -> dict[str, int]:
        """Return the values to write, in write order: the pool keys, then the limit keys."""
        preset = scenarios.load(self.scenario)
        values = dict(preset.pool_values)
        if self.initial_pool_size is not None:
            values["initial_pool_size"] = self.initial_pool_size
        if self.max_pool_size is not None:
            values["max_pool_size"] = self.max_pool_size
        ordered = {name: values[name] for name in POOL_KEYS}
        if not self.keep_limits:
            ordered.update({name: preset.limit_values[name] for name in LIMIT_KEYS if name in preset.limit_values})
        return ordered


def zig_module() -> Any:
    """Import the Zig rewriter on first use, so TOML conversion works without it."""
    from migrate import zig_rewrite

    return zig_rewrite


def plan_convert(paths: list[Path], options: ConvertOptions) -> list[FileResult]:
    """Compute the result for every file under `paths` without writing anything."""
    values = options.target_values()
    results = []
    for target in expand_paths(paths):
        try:
            if target.kind == "zig":
                result = _plan_zig(target, values, options)
            else:
                result = _plan_toml(target, values, options)
        except InputError as error:
            result = FileResult(target.path, target.kind, "error", str(error), EXIT_UNREADABLE)
        if result is not None:
            results.append(result)
    return results


def _plan_toml(target: Target, values: dict[str, int], options: ConvertOptions) -> FileResult | None:
    path = target.path
    data, text = read_text(path)
    try:
        document = parse_toml(text, path=str(path))
    except TomlSyntaxError as error:
        return FileResult(path, "toml", "error", str(error), EXIT_UNREADABLE)

    state = classify_toml(document)
    if state == "none":
        if not target.explicit:
            return None
        return FileResult(path, "toml", "unchanged", f"{path}: has no MAX_CLIENTS_POOL and no pool keys; nothing to convert.")
    if state == "converted":
        return FileResult(path, "toml", "unchanged", f"{path}: already converted (INITIAL_POOL_SIZE/MAX_POOL_SIZE present); left untouched.")
    scanned = scan(text)
    if state == "conflict":
        legacy = scanned.named(LEGACY_POOL_KEY)
        new = scanned.named(*POOL_KEYS)
        where = f"line {legacy[0].line}" if legacy else "an inline table"
        other = f"line {new[0].line}" if new else "an inline table"
        return FileResult(
            path, "toml", "conflict",
            f"{path}:{legacy[0].line if legacy else 1}: conflict: MAX_CLIENTS_POOL ({where}) and the new pool keys ({other}) "
            "are both set, so the intended values are unclear. Remove one of them by hand, then run the command again.",
            EXIT_INVALID,
        )

    try:
        rewrite = convert_toml(text, values, path=str(path))
    except TomlRewriteError as error:
        return FileResult(path, "toml", "error", str(error), EXIT_INVALID)
    assert rewrite is not None

    for statement in scanned.named(LEGACY_POOL_KEY):
        result_values = pool_values_at(rewrite.document, statement.path)
        file_values = {k: v for k, v in pool_values_at(document, statement.path).items() if k != LEGACY_POOL_KEY}
        problem = _validation_message(path, statement.line, result_values, file_values, options)
        if problem:
            return FileResult(path, "toml", "error", problem, EXIT_INVALID, original_text=text)

    return _would_convert(path, "toml", data, text, rewrite.text, [c.as_dict() for c in rewrite.changes], options)


def _plan_zig(target: Target, values: dict[str, int], options: ConvertOptions) -> FileResult | None:
    path = target.path
    data, text = read_text(path)
    try:
        zig = zig_module()
    except ImportError:
        return FileResult(path, "zig", "error", f"{path}: Zig support (migrate.zig_rewrite) is not installed.", EXIT_UNREADABLE)

    state = zig.classify_zig(text)
    if state == "none":
        if not target.explicit:
            return None
        return FileResult(path, "zig", "unchanged", f"{path}: has no MAX_CLIENTS_POOL; nothing to convert.")
    if state in ("converted-config", "converted-references"):
        return FileResult(path, "zig", "unchanged", f"{path}: already converted; left untouched.")
    if state == "conflict":
        return FileResult(
            path, "zig", "conflict",
            f"{path}:{_zig_legacy_line(text)}: conflict: MAX_CLIENTS_POOL and INITIAL_POOL_SIZE/MAX_POOL_SIZE are all declared, "
            "so the intended values are unclear. Remove one of them by hand, then run the command again.",
            EXIT_INVALID,
        )

    try:
        if state == "legacy-config":
            new_text = zig.convert_config_zig(text, values, path=str(path))
        else:
            new_text = zig.convert_zig_references(text, path=str(path))
    except zig.ZigRewriteError as error:
        return FileResult(path, "zig", "error", str(error), EXIT_INVALID)
    if new_text is None:
        return FileResult(path, "zig", "unchanged", f"{path}: nothing to convert.")

    changes: list[dict[str, Any]] = []
    if state == "legacy-config":
        result_values = zig.read_config_zig(new_text)
        file_values = {k: v for k, v in zig.read_config_zig(text).items() if k != LEGACY_POOL_KEY}
        problem = _validation_message(path, _zig_legacy_line(text), result_values, file_values, options)
        if problem:
            return FileResult(path, "zig", "error", problem, EXIT_INVALID, original_text=text)
        changes = [{"action": "set", "key": name, "line": None, "old": None, "new": value} for name, value in values.items()]
    else:
        changes = [{"action": "replaced", "key": "config.MAX_CLIENTS_POOL", "line": None, "old": None, "new": "config.INITIAL_POOL_SIZE"}]
    return _would_convert(path, "zig", data, text, new_text, changes, options)


def _zig_legacy_line(text: str) -> int:
    match = _ZIG_LEGACY_DECLARATION.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _would_convert(
    path: Path, kind: str, data: bytes, text: str, new_text: str, changes: list[dict[str, Any]], options: ConvertOptions
) -> FileResult:
    return FileResult(
        path, kind, "would-convert", f"{path}: would be converted.", EXIT_OK,
        original_text=text, new_text=new_text, original_bytes=data, changes=changes,
        backup=backup_path(path) if options.backup else None,
    )


def _validation_message(
    path: Path, line: int, result: dict[str, Any], file_values: dict[str, Any], options: ConvertOptions
) -> str | None:
    """Return the error for values that break a pool rule, with the fixes that would work."""
    problems = check_pool({k: v for k, v in result.items() if k != LEGACY_POOL_KEY})
    if not problems:
        return None
    fixes = _suggest_fixes(result, file_values, options)
    without_keep_limits = _fixed_without_keep_limits(result, options)
    if fixes:
        fix_text = f" To fix it, use {' or '.join(fixes)}" + (", or run without --keep-limits." if without_keep_limits else ".")
    elif without_keep_limits:
        fix_text = " To fix it, run without --keep-limits."
    else:
        fix_text = " Edit the values in the file so they fit."
    return f"{path}:{line}: {' '.join(problems)}{fix_text} Nothing was written."


def _suggest_fixes(result: dict[str, Any], file_values: dict[str, Any], options: ConvertOptions) -> list[str]:
    """Return presets and flags that would give valid values for this file."""
    fixes = []
    for preset in scenarios.load_all():
        if preset.name == options.scenario and options.initial_pool_size is None and options.max_pool_size is None:
            continue
        candidate = {k: v for k, v in file_values.items() if k not in POOL_KEYS}
        candidate.update(preset.pool_values)
        if not options.keep_limits:
            candidate.update(preset.limit_values)
        if not check_pool(candidate):
            fixes.append(f"--scenario {preset.name}")

    connections = result.get("max_connections")
    ceiling = result.get("max_pool_size")
    initial = result.get("initial_pool_size")
    if isinstance(connections, int) and isinstance(ceiling, int) and ceiling > connections >= 1:
        flags = f"--max-pool-size {connections}"
        if isinstance(initial, int) and initial > connections:
            flags = f"--initial-pool-size {connections} {flags}"
        fixes.append(flags)
    elif isinstance(initial, int) and isinstance(ceiling, int) and initial > ceiling >= 1:
        fixes.append(f"--initial-pool-size {ceiling}")
    return fixes


def _fixed_without_keep_limits(result: dict[str, Any], options: ConvertOptions) -> bool:
    """Tell whether applying the preset's limit keys would make the values valid."""
    if not options.keep_limits:
        return False
    candidate = {k: v for k, v in result.items() if k != LEGACY_POOL_KEY}
    candidate.update(scenarios.load(options.scenario).limit_values)
    return not check_pool(candidate)


def apply_convert(results: list[FileResult], options: ConvertOptions) -> None:
    """Write every planned conversion with its backup and journal, all or none.

    Raises migrate.transaction.WriteError when a write fails; the files are put back.
    """
    transaction = FileTransaction()
    for result in results:
        if result.status != "would-convert" or result.new_text is None or result.original_bytes is None:
            continue
        new_bytes = result.new_text.encode("utf-8")
        mode = result.path.stat().st_mode & 0o7777
        if options.backup:
            journal = Journal(
                file=result.path.name,
                kind=_journal_kind(result),
                sha256_before=sha256(result.original_bytes),
                sha256_after=sha256(new_bytes),
                scenario=options.scenario,
                values=options.target_values(),
                keep_limits=options.keep_limits,
                backup=backup_path(result.path).name,
            )
            transaction.write(backup_path(result.path), result.original_bytes, mode)
            transaction.write(journal_path(result.path), journal.to_bytes(), 0o644)
        transaction.write(result.path, new_bytes, mode)
    transaction.commit()

    for result in results:
        if result.status == "would-convert":
            result.status = "converted"
            result.message = f"{result.path}: converted." + (f" Backup: {result.backup}." if result.backup else "")


def _journal_kind(result: FileResult) -> str:
    if result.kind == "toml":
        return "toml"
    return "zig-config" if _ZIG_LEGACY_DECLARATION.search(result.original_text or "") else "zig-references"


def convert_exit_code(results: list[FileResult], *, check: bool) -> int:
    """Return 2 for unreadable input, 1 for validation failures, conflicts or --check finding work, else 0."""
    code = max((r.exit_code for r in results), default=EXIT_OK)
    if check and code == EXIT_OK and any(r.status == "would-convert" for r in results):
        return EXIT_INVALID
    return code
