"""One variant in its own process: a crash, a hang or a runaway allocation fails that variant
alone, and the run goes on.

Children are forked from a fork server (multiprocessing's "forkserver") that has imported torch,
the suite and the model zoo once per run, so a child starts in well under a second instead of
the 5 to 10 s a fresh interpreter takes here to import them. A child gets nothing from the
run's own process but two strings (run folder, variant name): it reads the scenario from the run
folder and writes its result there as JSON. Its progress and log lines come back over a pipe as
JSON lines; everything it prints goes to its log file, whose tail is kept when it dies.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from suite.progress import Bars, OpensTasks
from suite.results import VariantResult
from suite.run.run_folder import RunFolder

STDERR_TAIL_LINES = 40  # enough for Python's fault report: the error, the stack, the modules
POLL_S = 0.1
# Imported once in the fork server. Only modules that start no threads on import: a fork
# copies no threads, and a child must not inherit a pool whose workers did not come with it.
PRELOAD = ("torch", "numpy", "scipy.stats", "sklearn.datasets", "suite.run.bench", "models")
# What a child runs: named, not imported here (isolation knows nothing of what it isolates).
ENTRY = "suite.run.bench:variant_in_folder"
# onnx takes 1.2 s to import here (measured), which each variant with an ort_int8 step paid.
PRELOAD_IF_INSTALLED = ("transformers", "torchao", "onnx")


@cache
def fork_context(log: str) -> Any:
    """The fork server, started once per process with its output going to `log` (the first run
    folder's logs/fork-server.log): what the preloaded libraries print when imported (torchao's
    "Failed to load ... .so" lines, torch's deprecation warnings) stays out of the user's terminal."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    optional = [name for name in PRELOAD_IF_INSTALLED if importlib.util.find_spec(name)]
    context.set_forkserver_preload([*PRELOAD, *optional])
    with redirected_output(log):
        forkserver.ensure_running()  # the server keeps the file as its stdout and stderr
    return context


def start_fork_server(folder: RunFolder) -> Any:
    """The fork context, its server started (once per process) with the first run folder's log:
    it imports PRELOAD in the background while the caller goes on."""
    logs = folder.path / "logs"  # variants' logs there are NAME-HASH.log: no clash
    logs.mkdir(parents=True, exist_ok=True)
    return fork_context(str(logs / "fork-server.log"))


@contextmanager
def redirected_output(path: str) -> Iterator[None]:
    """This process's file descriptors 1 and 2 point at `path` for the length of the block (a
    process started inside it inherits them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(path, "ab") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=False):
            os.dup2(copy, fd)
            os.close(copy)


def run_isolated(folder: RunFolder, name: str, limits: Any, bars: Bars,
                 round_: int = 1) -> tuple[VariantResult | None, dict]:
    """Run variant `name`'s `round_`-th process in a child (ENTRY: called with the run folder, the
    name, progress bars and the round, it returns the result); return its saved result (None if
    it saved none) and how the process ended: {"returncode", "killed" (why, if we killed it),
    "stderr_tail"}."""
    log = folder.log_file(name)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = start_fork_server(folder).Process(target=child_main, name=f"suite variant {name}",
                                              args=(ENTRY, str(folder.path), name, str(log), sender, round_))
    relay = threading.Thread(target=relay_events, args=(receiver, bars), daemon=True)
    try:  # from the start: a Ctrl-C while the fork server makes the child must kill it too, or
        # multiprocessing's exit handler would wait for it to finish
        child.start()
        sender.close()  # the child has its own end: EOF comes when it exits
        relay.start()
        killed = supervise(child, limits)
    finally:
        if child.pid is not None and child.exitcode is None:  # interrupted (Ctrl-C): the child goes too
            kill(child)
    relay.join(timeout=5)
    said = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    ending = {"returncode": child.exitcode, "killed": killed, "stderr_tail": tail(said), "fault": fault_line(said)}
    return folder.round_result(name, round_), ending


def supervise(child: Any, limits: Any) -> str | None:
    """Wait for the child; kill it past the time-out or memory limit and say which."""
    import psutil

    start = time.monotonic()
    while child.exitcode is None:
        if time.monotonic() - start > limits.timeout_s:
            kill(child)
            return f"timed out after {limits.timeout_s:g} s (isolation.timeout_s)"
        rss = resident_bytes(psutil, child.pid)
        if limits.max_memory_mb is not None and rss > limits.max_memory_mb * 2**20:
            kill(child)
            return (f"used {rss / 2**20:,.0f} MiB of resident memory, over isolation.max_memory_mb "
                    f"{limits.max_memory_mb:g}")
        child.join(POLL_S)
    return None


def resident_bytes(psutil: Any, pid: int) -> int:
    """Resident memory of a process and its children (a compiler, a worker pool)."""
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:  # it ended between two looks
        return 0


def kill(child: Any) -> None:
    """Kill the child and whatever it started (its own session: compiler workers and the like)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # it had not made its session yet, or is gone
        child.kill()
    child.join()


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def fault_line(text: str) -> str | None:
    """The first line of Python's fault report, if the child's log has one."""
    return next((line for line in text.splitlines() if line.startswith("Fatal Python error:")), None)


def why_it_failed(ending: dict) -> tuple[str, str]:
    """(error type, one-line reason) for a child that left no result."""
    if ending["killed"]:
        return ("Timeout" if ending["killed"].startswith("timed out") else "MemoryLimit"), ending["killed"]
    code = ending["returncode"]
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        fault = f" ({ending['fault']})" if ending.get("fault") else ""
        return "Crash", f"the variant's process was killed by {name}{hint}{fault}"
    return "Crash", f"the variant's process exited with status {code} before saving a result"


# --- the parent's side of the event stream ---------------------------------------------------

def relay_events(receiver: Any, bars: Bars) -> None:
    """Show the child's progress bars and log lines in the parent's display."""
    tasks: dict[int, Any] = {}
    while True:
        try:
            apply_event(json.loads(receiver.recv_bytes()), tasks, bars)
        except (EOFError, OSError):  # the child is gone
            break
    for task in tasks.values():
        task.close()


def apply_event(event: dict, tasks: dict[int, Any], bars: Bars) -> None:
    if "log" in event:
        bars.log(event["log"])
    elif "open" in event:
        tasks[event["open"]] = bars.open_task(event["description"], event["total"])
    elif "update" in event and event["update"] in tasks:
        tasks[event["update"]].update(event["completed"], note=event["note"], total=event["total"])
    elif "close" in event and event["close"] in tasks:
        tasks.pop(event["close"]).close()


# --- the child's side -------------------------------------------------------------------------

class PipeBars(OpensTasks):
    """The Bars interface, sent to the parent as JSON messages (and log lines copied to stderr,
    so the variant's log file tells the whole story)."""

    def __init__(self, sender: Any):
        self.sender, self._ids = sender, itertools.count()

    def send(self, **event: Any) -> None:
        self.sender.send_bytes(json.dumps(event).encode())

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        self.send(log=message)

    def open_task(self, description: str, total: int | None) -> PipeTask:
        task_id = next(self._ids)
        self.send(open=task_id, description=description, total=total)
        return PipeTask(self, task_id)


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
    """Ask Linux to kill this process when its parent dies. A variant's parent is the fork
    server, which ends with the run's process: a killed run leaves no orphan measuring on."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's kill on exit still applies
        pass


def child_main(entry: str, run_dir: str, name: str, log: str, sender: Any, round_: int = 1) -> None:
    """The child: its own session (so the parent can kill all it starts), its output to the log
    file, then one variant measured by `entry` (its `round_`-th process) and saved in the run folder."""
    import importlib
    from pathlib import Path

    from suite.run.run_folder import RunFolder

    os.setsid()
    die_with_parent()
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    faulthandler.enable()  # a crash in native code still leaves the Python stack in the log
    folder = RunFolder(Path(run_dir))
    module, function = entry.split(":")
    measure = getattr(importlib.import_module(module), function)
    folder.save_round(measure(folder, name, PipeBars(sender), round_), round_)
