"""Where a variant runs. A launcher has two methods: `run(variants, started)`, which yields each
variant's VariantResult as it finishes (in any order; `started(variant)` is called as each one
starts), and never raises for a variant that fails: the failure is the result; and
`again(variants, round_, started)`, the same for each variant's `round_`-th process, which times
its shapes again (suite.run.bench.timed_again; suite.measure.processes). `InProcess`
measures in this process; `Subprocess` in a child per variant (suite.run.isolation: time-out, memory
limit, crash capture, fork server); `RayLauncher` on the nodes of a Ray cluster. The runner
picks one by name (`LAUNCHERS`), from `--launcher`, else `--in-process`, else the scenario's
`isolation.subprocess`.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from suite.config.scenario import Scenario, Variant
from suite.errors import SuiteError
from suite.phases import with_start_up
from suite.progress import Bars
from suite.registry import Registry, did_you_mean
from suite.results import VariantResult
from suite.run.bench import base_result
from suite.run.run_folder import RunFolder
from suite.run.run_plan import RunOptions


@dataclass(frozen=True)
class Launch:
    """What a launcher gets of the run: its folder, its scenario (as planned), the progress bars,
    how to measure a variant in this process, and where a cluster launcher runs (--address,
    --node, --cache-dir)."""

    folder: RunFolder
    scenario: Scenario
    bars: Bars
    measure: Callable[[Variant], VariantResult]  # the variant measured in this process (suite.run.bench)
    time_again: Callable[[Variant, int], VariantResult] | None = None  # its shapes timed again here, in round n
    address: str | None = None
    node: str | None = None
    cache_dir: Path | None = None


class OneByOne:
    """Variants launched one after another, in order."""

    def run(self, variants: list[Variant], started: Any) -> Iterator[VariantResult]:
        return self.again(variants, 1, started)

    def again(self, variants: list[Variant], round_: int, started: Any) -> Iterator[VariantResult]:
        for variant in variants:
            started(variant)
            yield self.launch(variant, round_)


class InProcess(OneByOne):
    """Every variant in this process, one after another (datasets and models shared); its later
    rounds too, which therefore cannot show what differs between processes (they say so)."""

    SAME_PROCESS = ("--in-process: its later rounds ran in the run's own process, so the interval of the "
                    "median covers the rounds' differences, not those between processes")

    def __init__(self, run: Launch):
        self.run_of = run

    def launch(self, variant: Variant, round_: int = 1) -> VariantResult:
        if round_ == 1:
            return self.run_of.measure(variant)
        result = self.run_of.time_again(variant, round_)
        self.run_of.folder.save_round(result, round_)
        return replace(result, warnings=(*result.warnings, self.SAME_PROCESS))


class Subprocess(OneByOne):
    """Each variant in its own child process, under the scenario's isolation limits."""

    def __init__(self, run: Launch):
        from suite.run.isolation import start_fork_server

        self.run_of = run
        start_fork_server(run.folder)  # it imports its preloads in the background meanwhile

    def launch(self, variant: Variant, round_: int = 1) -> VariantResult:
        return in_child(self.run_of.folder, self.run_of.scenario, variant, self.run_of.bars, round_)


def in_child(folder: RunFolder, scenario: Scenario, variant: Variant, bars: Bars, round_: int = 1) -> VariantResult:
    """The variant measured in a child process (its `round_`-th) under the scenario's isolation
    limits: its saved result, or a failed one saying how the child ended (the Ray launcher's
    tasks call this too)."""
    from suite.run.isolation import run_isolated, why_it_failed

    start = time.perf_counter()
    result, ending = run_isolated(folder, variant.name, scenario.isolation, bars, round_)
    seconds = round(time.perf_counter() - start, 3)
    if result is None:
        if "[Errno 28] No space left on device" in (ending["stderr_tail"] or ""):  # the run stops: nothing more fits
            raise OSError(errno.ENOSPC, "No space left on device (in the variant's process)", str(folder.path))
        error_type, reason = why_it_failed(ending)
        bars.log(f"{variant.name}: failed: {reason}")
        return replace(base_result(scenario, variant), status="failed", error=reason,
                       error_type=error_type, stderr_tail=ending["stderr_tail"], seconds=seconds)
    if ending["returncode"] != 0:  # it saved a result, then died on the way out
        result = replace(result, warnings=result.warnings + (f"process exited with status {ending['returncode']} "
                                                             "after saving this result",))
    phases = {k: v for k, v in (result.phases or {}).items() if k != "start-up"}
    return replace(result, seconds=seconds, phases=with_start_up(phases, seconds))


# Named, not imported: the Ray launcher's module imports this one (in_child), and needs Ray only when used.
LAUNCHERS = Registry("launcher", home="suite.run.launchers")
LAUNCHERS.register("in_process", "suite.run.launchers:InProcess")
LAUNCHERS.register("subprocess", "suite.run.launchers:Subprocess")
LAUNCHERS.register("ray", "suite.run.ray_launcher:RayLauncher")


def launcher_name(options: RunOptions, isolation: Any) -> str:
    """--launcher, else --in-process, else the scenario's isolation."""
    if options.address is not None and options.launcher != "ray":
        raise SuiteError("--address is the Ray cluster's: use it with --launcher ray")
    if options.launcher is not None:
        if options.launcher not in LAUNCHERS.names():
            raise SuiteError(f"--launcher: unknown launcher {options.launcher!r}"
                             f"{did_you_mean(options.launcher, LAUNCHERS.names())}")
        if options.in_process and options.launcher != "in_process":
            raise SuiteError(f"--in-process and --launcher {options.launcher}: choose one")
        return options.launcher
    return "in_process" if options.in_process or not isolation.subprocess else "subprocess"
