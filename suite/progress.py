"""Progress bars on stderr (rich), so stdout keeps only the summary and the report's path."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

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


class Bars(OpensTasks):
    def __init__(self, console_: Console | None = None):
        self.console = console_ or console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
            console=self.console, transient=True)

    def __enter__(self) -> Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def log(self, message: str) -> None:
        """A line printed above the bars, kept after they are gone."""
        self._progress.console.print(message, highlight=False, markup=False)

    def open_task(self, description: str, total: int | None) -> Task:
        """A bar until its close(); `task` is the usual way, this is for bars opened elsewhere."""
        return Task(self._progress, self._progress.add_task(escape(description), total=total, note=""))  # not markup


class Task:
    def __init__(self, progress: Progress, task_id: int):
        self._progress, self._id = progress, task_id

    def update(self, completed: int, note: str = "", total: int | None = None) -> None:
        fields = {"total": total} if total is not None else {}
        self._progress.update(self._id, completed=completed, note=escape(note), **fields)

    def close(self) -> None:
        self._progress.remove_task(self._id)
