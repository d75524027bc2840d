"""The `poolmigrate` command line: convert, rollback, presets and serve."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

import scenarios
from migrate.convert import ConvertOptions, apply_convert, convert_exit_code, plan_convert
from migrate.report import json_summary, presets_json, presets_tables, print_results
from migrate.results import EXIT_UNREADABLE, FileResult
from migrate.rollback import apply_rollback, plan_rollback, rollback_exit_code
from migrate.transaction import WriteError

app = typer.Typer(
    name="poolmigrate",
    help="Migrate MQTT broker configs from MAX_CLIENTS_POOL to a dynamic client pool, and back.",
    no_args_is_help=True,
    add_completion=False,
)

ScenarioName = enum.Enum("ScenarioName", {name: name for name in scenarios.PRESET_NAMES}, type=str)
# The levels `python -m broker --log-level` accepts.
LogLevel = enum.Enum("LogLevel", {name: name for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}, type=str)

# Flags take no value, so their help shows no type in place of one.
FLAG = ""
_PRESET_CHOICES = ", ".join(scenarios.PRESET_NAMES)

PathsArgument = Annotated[
    list[Path],
    typer.Argument(help="TOML files, Zig files or folders (searched recursively for *.toml with pool keys and *.zig)."),
]


def _consoles() -> tuple[Console, Console]:
    # Created per call so that output goes to the current sys.stdout and sys.stderr.
    return Console(), Console(stderr=True)


def _report(command: str, results: list[FileResult], code: int, *, as_json: bool, diff: bool, **extra: object) -> None:
    console, errors = _consoles()
    if as_json:
        console.out(json_summary(command, results, code, **extra), highlight=False)
    else:
        print_results(results, console, errors, diff=diff)


def _abort_notice(results: list[FileResult]) -> None:
    """Mark the files that would have changed, because one failure stops every write."""
    for result in results:
        if result.status.startswith("would-"):
            result.message += " Not written, because another file failed."


@app.command()
def convert(
    paths: PathsArgument,
    scenario: Annotated[
        ScenarioName, typer.Option(metavar="NAME", help=f"Preset whose values are written: one of {_PRESET_CHOICES}.")
    ] = ScenarioName.default,
    initial_pool_size: Annotated[Optional[int], typer.Option(help="INITIAL_POOL_SIZE to write, overriding the preset.")] = None,
    max_pool_size: Annotated[Optional[int], typer.Option(help="MAX_POOL_SIZE to write, overriding the preset.")] = None,
    keep_limits: Annotated[bool, typer.Option("--keep-limits", metavar=FLAG, help="Leave MAX_CONNECTIONS, IO_ENTRIES and FORWARD_BATCH_SIZE as they are.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar=FLAG, help="Print a unified diff per file and write nothing.")] = False,
    check: Annotated[bool, typer.Option("--check", metavar=FLAG, help="Write nothing; exit 1 when any file still needs converting.")] = False,
    as_json: Annotated[bool, typer.Option("--json", metavar=FLAG, help="Print a JSON summary instead of text.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", metavar=FLAG, help="Write no backup and no journal beside each file.")] = False,
) -> None:
    """Replace MAX_CLIENTS_POOL by INITIAL_POOL_SIZE and MAX_POOL_SIZE, keeping every other byte."""
    options = ConvertOptions(
        scenario=scenario.value,
        initial_pool_size=initial_pool_size,
        max_pool_size=max_pool_size,
        keep_limits=keep_limits,
        backup=not no_backup,
    )
    results = plan_convert(paths, options)
    code = convert_exit_code(results, check=check)

    if code == 0 and not dry_run and not check:
        try:
            apply_convert(results, options)
        except WriteError as error:
            results.append(FileResult(error.path, "toml", "error", str(error), EXIT_UNREADABLE))
            code = EXIT_UNREADABLE
    elif code != 0 and not check:
        _abort_notice(results)

    _report("convert", results, code, as_json=as_json, diff=dry_run, scenario=options.scenario, values=options.target_values())
    raise typer.Exit(code)


@app.command()
def rollback(
    paths: PathsArgument,
    force: Annotated[bool, typer.Option("--force", metavar=FLAG, help="Reverse the conversion in place even when the file was edited since.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar=FLAG, help="Print a unified diff per file and write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", metavar=FLAG, help="Print a JSON summary instead of text.")] = False,
) -> None:
    """Restore the original bytes from the backup, or reverse the conversion in place."""
    results = plan_rollback(paths, force=force)
    code = rollback_exit_code(results)

    if code == 0 and not dry_run:
        try:
            apply_rollback(results)
        except WriteError as error:
            results.append(FileResult(error.path, "toml", "error", str(error), EXIT_UNREADABLE))
            code = EXIT_UNREADABLE
    elif code != 0:
        _abort_notice(results)

    _report("rollback", results, code, as_json=as_json, diff=dry_run)
    raise typer.Exit(code)


@app.command()
def presets(
    as_json: Annotated[bool, typer.Option("--json", metavar=FLAG, help="Print the presets as JSON.")] = False,
) -> None:
    """List every preset with its values and memory targets."""
    console, _ = _consoles()
    loaded = scenarios.load_all()
    if as_json:
        console.out(presets_json(loaded), highlight=False)
    else:
        console.print(presets_tables(loaded))


@app.command()
def serve(
    config: Annotated[Optional[Path], typer.Argument(help="Broker config (TOML); the built-in defaults when omitted.")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port to listen on; 0 picks a free one.")] = None,
    ready_file: Annotated[Optional[Path], typer.Option(help="File the broker writes its address to once it listens.")] = None,
    log_level: Annotated[
        Optional[LogLevel], typer.Option(case_sensitive=False, help="Lowest level of log lines written to stderr (default: INFO).")
    ] = None,
) -> None:
    """Run the bundled MQTT broker with CONFIG."""
    from broker.__main__ import main

    argv: list[str] = []
    if config is not None:
        argv.append(str(config))
    if host is not None:
        argv += ["--host", host]
    if port is not None:
        argv += ["--port", str(port)]
    if ready_file is not None:
        argv += ["--ready-file", str(ready_file)]
    if log_level is not None:
        argv += ["--log-level", log_level.value]
    raise typer.Exit(main(argv))
