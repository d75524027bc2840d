"""Plan and apply `poolmigrate rollback`: restore the backup, or reverse the conversion in place."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from migrate.convert import zig_module
from migrate.discover import Target, expand_paths, unsupported_file_message
from migrate.files import InputError, decode_text, read_bytes, read_text, sha256
from migrate.journal import Journal, backup_path, journal_path, read_journal, rollback_backup_path
from migrate.results import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, FileResult
from migrate.toml_originals import TomlOriginals, record_originals
from migrate.toml_rewrite import TomlRewriteError, convert_toml, revert_toml
from migrate.transaction import FileTransaction
from migrate.zig_originals import ZigOriginals, apply_zig_originals, record_zig_originals

# Values before conversion that a forced rollback puts back, one class per file kind.
Originals = TomlOriginals | ZigOriginals


def plan_rollback(paths: list[Path], *, force: bool) -> list[FileResult]:
    """Compute the rollback of every file under `paths` without writing anything."""
    results = []
    for target in expand_paths(paths, with_journals=True):
        try:
            result = _plan_file(target, force=force)
        except InputError as error:
            result = FileResult(target.path, target.kind, "error", str(error), EXIT_UNREADABLE)
        if result is not None:
            results.append(result)
    return results


def _plan_file(target: Target, *, force: bool) -> FileResult | None:
    path = target.path
    journal = read_journal(path)
    unsupported = unsupported_file_message(target)
    if journal is None and unsupported is not None:
        return FileResult(path, target.kind, "error", unsupported, EXIT_UNREADABLE)
    data, text = read_text(path)
    if journal is None:
        reverse = _plan_reverse(target, data, text, reason="no backup")
        if target.explicit or reverse is None:
            return reverse
        # Found by a folder walk: only a journal proves that poolmigrate wrote this file.
        return FileResult(
            path, target.kind, "skipped",
            f"{path}: no conversion journal; name the file to reverse it in place (poolmigrate rollback {path}).",
        )

    removals = [p for p in (backup_path(path), journal_path(path)) if p.exists()]
    current = sha256(data)
    if current == journal.sha256_before:
        return FileResult(
            path, target.kind, "would-clean", f"{path}: already has its original bytes; the backup and journal will be removed.",
            original_text=text, new_text=text, original_bytes=data, removals=removals,
        )

    backup = backup_path(path)
    backup_bytes = _read_backup(backup)
    if current == journal.sha256_after and backup_bytes is not None and sha256(backup_bytes) == journal.sha256_before:
        return FileResult(
            path, target.kind, "would-restore", f"{path}: the original bytes in {backup} would be written back.",
            original_text=text, new_text=decode_text(backup, backup_bytes), original_bytes=data,
            new_bytes=backup_bytes, removals=removals, backup=backup,
        )

    originals = _originals(path, journal, backup_bytes)
    if backup_bytes is None and current == journal.sha256_after:
        return _plan_reverse(target, data, text, reason=f"the backup {backup} is missing", removals=removals, originals=originals)
    if force:
        # The backup is the only copy of the original bytes, so only an exact restore removes it.
        kept = [p for p in removals if p != backup]
        return _plan_reverse(target, data, text, reason="--force", removals=kept, originals=originals)
    return FileResult(
        path, target.kind, "changed", _changed_message(path, text, journal, backup_bytes), EXIT_INVALID,
        original_text=text, original_bytes=data,
    )


def _originals(path: Path, journal: Journal, backup_bytes: bytes | None) -> Originals | None:
    """Return the values before conversion from the journal, else from an intact backup; None when neither has them."""
    if journal.kind not in ("toml", "zig-config"):
        return None
    if journal.originals is not None:
        try:
            if journal.kind == "toml":
                return TomlOriginals.from_json(journal.originals)
            return ZigOriginals.from_json(journal.originals)
        except (KeyError, TypeError):
            pass
    if backup_bytes is None or sha256(backup_bytes) != journal.sha256_before:
        return None
    try:
        original = decode_text(path, backup_bytes)
        if journal.kind == "toml":
            return record_originals(original, journal.values, path=str(backup_path(path)))
        return record_zig_originals(original, journal.values)
    except (InputError, TomlRewriteError):
        return None


def _read_backup(backup: Path) -> bytes | None:
    try:
        return read_bytes(backup)
    except InputError:
        return None


def _changed_message(path: Path, text: str, journal: Journal, backup_bytes: bytes | None) -> str:
    """Say how the file differs from what the conversion wrote, and how to proceed."""
    backup = backup_path(path)
    difference = f"its SHA-256 is no longer {journal.sha256_after[:12]}…"
    converted = _reconvert(path, journal, backup_bytes)
    if converted is not None:
        lines = _changed_lines(converted, text)
        if lines:
            noun, verb = ("line", "differs") if len(lines) == 1 else ("lines", "differ")
            difference = f"{noun} {_line_ranges(lines)} {verb} from what the conversion wrote"
    if backup_bytes is None:
        restore = f"the backup {backup} is missing"
    elif sha256(backup_bytes) != journal.sha256_before:
        restore = f"the backup {backup} was changed too, so it cannot be trusted"
    else:
        restore = f"to discard those edits, copy {backup} over {path} by hand"
    return (
        f"{path}: edited since it was converted on {journal.converted_at} ({difference}), so rollback stopped. "
        f"Run `poolmigrate rollback --force {path}` to reverse the conversion and keep the edits; {restore}."
    )


def _reconvert(path: Path, journal: Journal, backup_bytes: bytes | None) -> str | None:
    """Repeat the recorded conversion on the backup; None unless it reproduces the recorded hash."""
    if backup_bytes is None or sha256(backup_bytes) != journal.sha256_before:
        return None
    try:
        original = decode_text(path, backup_bytes)
        if journal.kind == "toml":
            rewrite = convert_toml(original, journal.values, path=str(path))
            converted = rewrite.text if rewrite else None
        elif journal.kind == "zig-config":
            converted = zig_module().convert_config_zig(original, journal.values, path=str(path))
        else:
            converted = zig_module().convert_zig_references(original, path=str(path))
    except (InputError, ImportError, ValueError):
        return None
    if converted is None or sha256(converted.encode("utf-8")) != journal.sha256_after:
        return None
    return converted


def _changed_lines(before: str, after: str) -> list[int]:
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    lines: list[int] = []
    for tag, _, _, start, end in matcher.get_opcodes():
        if tag == "equal":
            continue
        if start == end:
            # Lines were deleted here; point at the line that now follows the gap.
            lines.append(max(start, 1))
        else:
            lines.extend(range(start + 1, end + 1))
    return sorted(set(lines))


def _line_ranges(lines: list[int]) -> str:
    ranges: list[str] = []
    start = previous = lines[0]
    for line in [*lines[1:], None]:
        if line is not None and line == previous + 1:
            previous = line
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if line is not None:
            start = previous = line
    return ", ".join(ranges)


def _plan_reverse(
    target: Target, data: bytes, text: str, *, reason: str, removals: list[Path] | None = None, originals: Originals | None = None
) -> FileResult | None:
    """Reverse the conversion on the current text, with the values before conversion when `originals` has them.

    Without them MAX_CLIENTS_POOL = MAX_POOL_SIZE.
    """
    path = target.path
    removals = removals or []
    changes: list[dict[str, Any]] = []
    try:
        if target.kind == "toml":
            toml_originals = originals if isinstance(originals, TomlOriginals) else None
            rewrite = revert_toml(text, path=str(path), originals=toml_originals)
            new_text = rewrite.text if rewrite else None
            changes = [c.as_dict() for c in rewrite.changes] if rewrite else []
        else:
            zig = zig_module()
            state = zig.classify_zig(text)
            restored: set[str] = set()
            if state == "converted-config":
                new_text = zig.revert_config_zig(text, path=str(path))
                if new_text is not None and isinstance(originals, ZigOriginals):
                    new_text, restored = apply_zig_originals(new_text, originals)
            elif state == "converted-references":
                new_text = zig.revert_zig_references(text, path=str(path))
            else:
                new_text = None
            if new_text is not None:
                from migrate.zig_changes import describe_zig_changes

                changes = _mark_restored(describe_zig_changes(text, new_text), restored)
    except (TomlRewriteError, ValueError) as error:
        return FileResult(path, target.kind, "error", str(error), EXIT_INVALID)
    except ImportError:
        return FileResult(path, target.kind, "error", f"{path}: Zig support (migrate.zig_rewrite) is not installed.", EXIT_UNREADABLE)

    if new_text is None:
        if not target.explicit and not removals:
            return None
        message = f"{path}: not converted; nothing to roll back."
        if removals:
            message = f"{path}: not converted; the stale backup and journal will be removed."
            return FileResult(path, target.kind, "would-clean", message, original_text=text, new_text=text, original_bytes=data, removals=removals)
        return FileResult(path, target.kind, "unchanged", message)
    keep = rollback_backup_path(path)
    try:
        earlier_copy = keep.read_bytes()
    except FileNotFoundError:
        earlier_copy = None
    except OSError as error:
        return FileResult(path, target.kind, "error", f"{keep}: could not be read ({error.strerror or error}).", EXIT_UNREADABLE)
    if earlier_copy is not None and earlier_copy != data:
        return FileResult(
            path, target.kind, "error",
            f"{path}: reversing it in place would overwrite {keep}, which holds other bytes from an earlier rollback. "
            f"Move or delete {keep}, then run the command again.",
            EXIT_INVALID,
        )
    return FileResult(
        path, target.kind, "would-revert",
        f"{path}: the conversion would be undone in place ({reason}), keeping its current bytes in {keep}.",
        original_text=text, new_text=new_text, original_bytes=data, changes=changes, removals=removals,
        rollback_backup=keep,
    )


def _mark_restored(changes: list[dict[str, Any]], restored: set[str]) -> list[dict[str, Any]]:
    """Say "restored" for the values the file had before conversion and "set" for the others."""
    for change in changes:
        name = change["key"].upper()
        if change["action"] == "restored" and name not in restored:
            change["action"] = "set"
        elif change["action"] == "updated" and name in restored:
            change["action"] = "restored"
    return changes


def apply_rollback(results: list[FileResult]) -> None:
    """Write every planned rollback and remove its backup and journal, all or none."""
    transaction = FileTransaction()
    for result in results:
        if not result.status.startswith("would-"):
            continue
        if result.rollback_backup is not None and result.original_bytes is not None:
            transaction.write(result.rollback_backup, result.original_bytes, result.path.stat().st_mode & 0o7777)
        if result.new_bytes is not None:
            transaction.write(result.path, result.new_bytes)
        elif result.new_text is not None and result.new_text != result.original_text:
            transaction.write(result.path, result.new_text.encode("utf-8"))
        for removal in result.removals:
            transaction.remove(removal)
    transaction.commit()

    done = {"would-restore": "restored", "would-revert": "reverted", "would-clean": "cleaned"}
    for result in results:
        if result.status in done:
            result.status = done[result.status]
            result.message = result.message.replace("would be ", "").replace(" will be ", " were ")
            if result.status == "restored":
                result.message = f"{result.path}: original bytes written back from {result.backup}; backup and journal removed."
            elif result.status == "reverted":
                result.backup = result.rollback_backup
                result.message = f"{result.path}: MAX_CLIENTS_POOL is back in place; its previous bytes were kept in {result.rollback_backup}"
                original = backup_path(result.path)
                if original.exists():
                    result.message += f"; the original bytes stay in {original}, delete it once the result is right"
                if result.removals:
                    result.message += f"; removed {', '.join(str(p) for p in result.removals)}"
                result.message += "."


def rollback_exit_code(results: list[FileResult]) -> int:
    return max((r.exit_code for r in results), default=EXIT_OK)
