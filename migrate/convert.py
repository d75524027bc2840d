"""Plan and apply `poolmigrate convert`: every file is computed and validated before any is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scenarios
from broker.config import ALL_POOL_KEYS, LEGACY_POOL_KEY, LIMIT_KEYS, POOL_KEYS
from migrate.discover import Target, expand_paths, unsupported_file_message
from migrate.files import InputError, read_text, sha256
from migrate.journal import Journal, backup_path, journal_path
from migrate.results import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, FileResult
from migrate.toml_rewrite import TomlRewriteError, TomlSyntaxError, classify_toml, convert_toml, parse_toml
from migrate.toml_scan import ScannedDocument, scan
from migrate.toml_units import statement_value, unit_statements
from migrate.transaction import FileTransaction
from migrate.validation import FileValue, Unit, check_legacy, check_units

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
        unsupported = unsupported_file_message(target)
        if unsupported is not None:
            results.append(FileResult(target.path, target.kind, "error", unsupported, EXIT_UNREADABLE))
            continue
        try:
            if target.kind == "zig":
                result = _plan_zig(target, values, options)
            else:
                result = _plan_toml(target, values, options)
        except InputError as error:
            result = FileResult(target.path, target.kind, "error", str(error), EXIT_UNREADABLE)
        if result is not None and result.status == "would-convert" and options.backup:
            result = _check_earlier_backup(result)
        if result is not None:
            results.append(result)
    return results


def _check_earlier_backup(result: FileResult) -> FileResult:
    """Return an error in place of `result` when writing its backup would overwrite other bytes.

    A backup left by an earlier conversion (kept by `rollback --force`, for example) may be
    the only copy of the file's original bytes, so convert never replaces it with different ones.
    """
    path = result.path
    backup = backup_path(path)
    try:
        earlier = backup.read_bytes()
    except FileNotFoundError:
        return result
    except OSError as error:
        return FileResult(
            path, result.kind, "error",
            f"{path}: the existing backup {backup} could not be read ({error.strerror or error}), "
            "so convert cannot tell whether writing a new backup would lose it. Move it away, then run the command again.",
            EXIT_UNREADABLE,
        )
    if earlier == result.original_bytes:
        return result
    return FileResult(
        path, result.kind, "error",
        f"{path}: {backup} already exists and contains other bytes (an earlier original), "
        "which converting now would overwrite. Move it away or delete it, then run the command again.",
        EXIT_INVALID,
    )


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
            f"{path}:{legacy[0].line if legacy else 1}: MAX_CLIENTS_POOL ({where}) and the new pool keys ({other}) "
            "are both set, so the intended values are unclear. Remove one of them by hand, then run the command again.",
            EXIT_INVALID,
        )

    problem = _first_problem(path, _toml_units(document, scanned), options)
    if problem:
        return FileResult(path, "toml", "error", problem, EXIT_INVALID, original_text=text)

    try:
        rewrite = convert_toml(text, values, path=str(path))
    except TomlRewriteError as error:
        return FileResult(path, "toml", "error", str(error), EXIT_INVALID)
    assert rewrite is not None
    return _would_convert(path, "toml", data, text, rewrite.text, [c.as_dict() for c in rewrite.changes])


def _toml_units(document: dict[str, Any], scanned: ScannedDocument) -> list[Unit]:
    """Return one unit per table that contains the legacy key, with the values the file gives it."""
    text = scanned.text
    units = []
    for legacy in scanned.named(LEGACY_POOL_KEY):
        found = unit_statements(scanned.statements, legacy.path, ALL_POOL_KEYS)
        found[LEGACY_POOL_KEY] = legacy
        values = {
            name: FileValue(
                statement_value(document, statement),
                statement.line,
                text[statement.key_start : statement.last_key_end],
                text[statement.key_start : statement.value_end],
            )
            for name, statement in found.items()
        }
        units.append(Unit(legacy.line, values))
    return units


def _first_problem(path: Path, units: list[Unit], options: ConvertOptions) -> str | None:
    """Return the first error: a legacy value the broker rejects, then converted values that break a rule."""
    for unit in units:
        problem = check_legacy(path, unit)
        if problem:
            return problem
    return check_units(path, units, options)


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
            f"{path}:{_zig_legacy_line(text)}: MAX_CLIENTS_POOL and INITIAL_POOL_SIZE/MAX_POOL_SIZE are all declared, "
            "so the intended values are unclear. Remove one of them by hand, then run the command again.",
            EXIT_INVALID,
        )

    if state == "legacy-config":
        settings = zig.config_zig_settings(text)
        values_in_file = {name: FileValue(*setting) for name, setting in settings.items()}
        unit = Unit(_zig_legacy_line(text), values_in_file)
        problem = _first_problem(path, [unit], options)
        if problem:
            return FileResult(path, "zig", "error", problem, EXIT_INVALID, original_text=text)

    try:
        if state == "legacy-config":
            new_text = zig.convert_config_zig(text, values, path=str(path))
        else:
            new_text = zig.convert_zig_references(text, path=str(path))
    except zig.ZigRewriteError as error:
        return FileResult(path, "zig", "error", str(error), EXIT_INVALID)
    if new_text is None:
        return FileResult(path, "zig", "unchanged", f"{path}: nothing to convert.")

    from migrate.zig_changes import describe_zig_changes

    changes = describe_zig_changes(text, new_text)
    return _would_convert(path, "zig", data, text, new_text, changes)


def _zig_legacy_line(text: str) -> int:
    match = _ZIG_LEGACY_DECLARATION.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _would_convert(path: Path, kind: str, data: bytes, text: str, new_text: str, changes: list[dict[str, Any]]) -> FileResult:
    # The backup is named only once it is written.
    return FileResult(
        path, kind, "would-convert", f"{path}: has MAX_CLIENTS_POOL to replace.", EXIT_OK,
        original_text=text, new_text=new_text, original_bytes=data, changes=changes,
    )


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
                originals=_originals(result, options),
            )
            transaction.write(backup_path(result.path), result.original_bytes, mode)
            transaction.write(journal_path(result.path), journal.to_bytes(), 0o644)
        transaction.write(result.path, new_bytes, mode)
    transaction.commit()

    for result in results:
        if result.status == "would-convert":
            result.status = "converted"
            result.backup = backup_path(result.path) if options.backup else None
            if result.backup is not None:
                result.message = f"{result.path}: backup in {result.backup}."
            else:
                result.message = f"{result.path}: no backup or journal written (--no-backup)."


def _originals(result: FileResult, options: ConvertOptions) -> dict[str, Any] | None:
    """Record the values before conversion of a TOML file or config.zig; None for other Zig files."""
    if result.original_text is None:
        return None
    if result.kind == "toml":
        from migrate.toml_originals import record_originals

        return record_originals(result.original_text, options.target_values(), path=str(result.path)).to_json()
    if _journal_kind(result) == "zig-config":
        from migrate.zig_originals import record_zig_originals

        return record_zig_originals(result.original_text, options.target_values()).to_json()
    return None


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
