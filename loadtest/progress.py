"""The progress bar shown while a run ramps, on stderr so that stdout stays for the report."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RampProgress:
    """A rich progress bar of connected clients, with one line per event above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failures]} failed"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("connecting", total=None, failures=0)

    def __enter__(self) -> RampProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()

    def stage(self, target: int, total: int) -> None:
        self.bar.update(self.task, description=f"to {target:,}", total=total)

    def update(self, connected: int, failures: int) -> None:
        self.bar.update(self.task, completed=connected, failures=failures)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False)
