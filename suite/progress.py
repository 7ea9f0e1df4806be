"""Progress: bars on stderr (rich) when both streams are terminals; otherwise (CI, `| tee`, a file)
plain lines on stdout: one when each variant starts and ends, and one per long task at most every
PLAIN_INTERVAL_S (a training run's epochs, a long measurement). Warnings and errors stay on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def console(stderr: bool = False) -> Console:
    """A console that does not squeeze tables to 80 columns when output goes to a file or a CI log."""
    made = Console(stderr=stderr)
    if not made.is_terminal:
        made.width = 160
    return made


class OpensTasks:
    """`task`, a bar for the length of a with-block, for any Bars-like class with open_task."""

    def open_task(self, description: str, total: int | None) -> Any:
        raise NotImplementedError

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Any]:
        task = self.open_task(description, total)
        try:
            yield task
        finally:
            task.close()


PLAIN_INTERVAL_S = 15.0


class Bars(OpensTasks):
    def __init__(self, console_: Console | None = None, plain: bool | None = None):
        self.console = console_ or console(stderr=True)
        self.plain = not (self.console.is_terminal and sys.stdout.isatty()) if plain is None else plain
        self._out = console()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
            console=self.console, transient=True)

    def __enter__(self) -> Bars:
        if not self.plain:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.plain:
            self._progress.stop()

    def log(self, message: str) -> None:
        """A line on stderr (above the bars, kept after they are gone)."""
        self._progress.console.print(message, highlight=False, markup=False, soft_wrap=True)  # one line stays one

    def progress(self, message: str) -> None:
        """A plain progress line on stdout, only where no bars are shown (a log keeps it)."""
        if self.plain:
            self._out.print(message, highlight=False, markup=False, soft_wrap=True)

    def open_task(self, description: str, total: int | None) -> Task:
        """A bar until its close(); `task` is the usual way, this is for bars opened elsewhere."""
        if self.plain:
            return PlainTask(self, description, total)
        return Task(self._progress, self._progress.add_task(escape(description), total=total, note=""))  # not markup


class Task:
    def __init__(self, progress: Progress, task_id: int):
        self._progress, self._id = progress, task_id

    def update(self, completed: int, note: str = "", total: int | None = None) -> None:
        fields = {"total": total} if total is not None else {}
        self._progress.update(self._id, completed=completed, note=escape(note), **fields)

    def close(self) -> None:
        self._progress.remove_task(self._id)


class PlainTask:
    """A task without a bar: a line of its state when PLAIN_INTERVAL_S have passed since the last."""

    def __init__(self, bars: Bars, description: str, total: int | None):
        self.bars, self.description, self.total = bars, description, total
        self._start = self._last = time.monotonic()

    def update(self, completed: int, note: str = "", total: int | None = None) -> None:
        self.total = total if total is not None else self.total
        now = time.monotonic()
        if now - self._last >= PLAIN_INTERVAL_S:
            self._last = now
            count = f"{completed}/{self.total}" if self.total is not None else str(completed)
            self.bars.progress(f"{self.description}: {count} {note} ({now - self._start:.0f} s)".replace("  ", " "))

    def close(self) -> None:
        pass
