"""One variant in its own process: a crash, a hang or a runaway allocation fails that variant
alone, and the run goes on.

The parent starts `python -m suite.isolation RUN_DIR VARIANT` and watches it (time-out, resident
memory); the child reads the run folder, measures the variant and writes its result there as
JSON. The child's progress and log lines come back over its stdout as JSON lines; whatever else
it prints goes to its log file, whose tail is kept when it dies.
"""

from __future__ import annotations

import faulthandler
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Any, Iterator

from suite.results import VariantResult

STDERR_TAIL_LINES = 20
POLL_S = 0.1


def run_isolated(folder: Any, name: str, limits: Any, bars: Any) -> tuple[VariantResult | None, dict]:
    """Run variant `name` in a child process; return its saved result (None if it saved none)
    and how the process ended: {"returncode", "killed" (why, if we killed it), "stderr_tail"}."""
    log = folder.log_file(name)
    with open(log, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "suite.isolation", str(folder.path), name],
                                 stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    relay = threading.Thread(target=relay_events, args=(child.stdout, bars), daemon=True)
    relay.start()
    try:
        killed = supervise(child, limits)
    finally:
        if child.poll() is None:  # interrupted (Ctrl-C): the child goes too
            kill(child)
    relay.join(timeout=5)
    ending = {"returncode": child.returncode, "killed": killed, "stderr_tail": tail(log)}
    return folder.finished(name), ending


def supervise(child: subprocess.Popen, limits: Any) -> str | None:
    """Wait for the child; kill it past the time-out or memory limit and say which."""
    import psutil

    start = time.monotonic()
    while child.poll() is None:
        if time.monotonic() - start > limits.timeout_s:
            kill(child)
            return f"timed out after {limits.timeout_s:g} s (isolation.timeout_s)"
        rss = resident_bytes(psutil, child.pid)
        if limits.max_memory_mb is not None and rss > limits.max_memory_mb * 2**20:
            kill(child)
            return (f"used {rss / 2**20:,.0f} MiB of resident memory, over isolation.max_memory_mb "
                    f"{limits.max_memory_mb:g}")
        time.sleep(POLL_S)
    return None


def resident_bytes(psutil: Any, pid: int) -> int:
    """Resident memory of a process and its children (a compiler, a worker pool)."""
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:  # it ended between two looks
        return 0


def kill(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def tail(log: Any, lines: int = STDERR_TAIL_LINES) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def why_it_failed(ending: dict) -> tuple[str, str]:
    """(error type, one-line reason) for a child that left no result."""
    if ending["killed"]:
        return ("Timeout" if ending["killed"].startswith("timed out") else "MemoryLimit"), ending["killed"]
    code = ending["returncode"]
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        return "Crash", f"the variant's process was killed by {name}{hint}"
    return "Crash", f"the variant's process exited with status {code} before saving a result"


# --- the parent's side of the event stream ---------------------------------------------------

def relay_events(stream: IO[bytes], bars: Any) -> None:
    """Show the child's progress bars and log lines in the parent's display."""
    tasks: dict[int, Any] = {}
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        try:
            event = json.loads(line)
        except ValueError:
            bars.log(line)
            continue
        apply_event(event, tasks, bars)
    for task in tasks.values():
        task.close()


def apply_event(event: dict, tasks: dict[int, Any], bars: Any) -> None:
    if "log" in event:
        bars.log(event["log"])
    elif "open" in event:
        tasks[event["open"]] = bars.open_task(event["description"], event["total"])
    elif "update" in event and event["update"] in tasks:
        tasks[event["update"]].update(event["completed"], note=event["note"], total=event["total"])
    elif "close" in event and event["close"] in tasks:
        tasks.pop(event["close"]).close()


# --- the child's side -------------------------------------------------------------------------

class PipeBars:
    """The Bars interface, sent to the parent as JSON lines (and log lines copied to stderr,
    so the variant's log file tells the whole story)."""

    def __init__(self, stream: IO[str]):
        self.stream, self._ids = stream, itertools.count()

    def send(self, **event: Any) -> None:
        self.stream.write(json.dumps(event) + "\n")

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        self.send(log=message)

    def open_task(self, description: str, total: int | None) -> PipeTask:
        task_id = next(self._ids)
        self.send(open=task_id, description=description, total=total)
        return PipeTask(self, task_id)

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[PipeTask]:
        task = self.open_task(description, total)
        try:
            yield task
        finally:
            task.close()


class PipeTask:
    MIN_INTERVAL_S = 0.1  # progress is for eyes: a sample every millisecond needs no line each

    def __init__(self, bars: PipeBars, task_id: int):
        self.bars, self.id, self._last = bars, task_id, 0.0

    def update(self, completed: int, note: str = "", total: int | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= self.MIN_INTERVAL_S or total is not None:
            self._last = now
            self.bars.send(update=self.id, completed=completed, note=note, total=total)

    def close(self) -> None:
        self.bars.send(close=self.id)


def die_with_parent() -> None:
    """Ask Linux to kill this process if the parent dies (killed run: no orphan measuring on)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's kill on exit still applies
        pass


def main(argv: list[str]) -> int:
    from pathlib import Path

    from suite.run_folder import RunFolder
    from suite.runner import variant_in_folder

    die_with_parent()
    faulthandler.enable()  # a crash in native code still leaves the Python stack in the log
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # libraries that print to stdout must not break the event stream
    run_dir, name = argv
    folder = RunFolder(Path(run_dir))
    result = variant_in_folder(folder, name, PipeBars(events))
    folder.save_variant(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
