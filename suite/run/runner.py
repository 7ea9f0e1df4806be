"""The only orchestrator: expands a scenario into variants and has each measured by a launcher.

A variant that fails is recorded with its error and the run goes on. Each variant runs in its
own process by default (suite.run.launchers, suite.run.isolation); each finished variant is saved in the
run folder at once and results.json rewritten (atomically), so nothing measured is lost and an
interrupted run can be resumed (suite.run.run_folder). What a variant is made of is suite.build.building;
how it is measured, suite.run.bench; which variants run, suite.run.run_plan.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite import __version__
from suite.analysis.select import recommend
from suite.config.scenario import Scenario
from suite.errors import RunInterrupted, SuiteError
from suite.progress import Bars
from suite.results import RunResult, VariantResult, save_csv, save_json
from suite.run.bench import Bench
from suite.run.launchers import LAUNCHERS, Launch, launcher_name
from suite.run.run_folder import RunFolder, options_dict, slug
from suite.run.run_plan import RunOptions, planned, started_as, use_sys_path

__all__ = ["RunOptions", "run", "resume"]

BUSY_ROUNDS = 2  # extra processes at most for the variants timed while the machine was busy
QUIET_WAIT_S = 30.0  # how long to wait for a quiet machine before each of them


def run(scenario: Scenario, options: RunOptions, bars: Bars, folder: RunFolder | None = None) -> tuple[RunResult, Path]:
    """Measure every selected variant; write results.json, results.csv, index.html and summary.md.

    `folder`: an interrupted run to finish; its finished variants are kept, not measured again."""
    planned_scenario, variants, duplicates = planned(scenario, options)
    name = launcher_name(options, scenario.isolation)
    getattr(LAUNCHERS.get(name), "check", lambda options: None)(options)
    made = folder is None
    try:
        if folder is None:
            folder = RunFolder(new_run_dir(options.out_dir, scenario.name))
            folder.start(Path(scenario.source), options_dict(options), sys.path)
        return measured(scenario, options, bars, folder, name, (planned_scenario, variants, duplicates))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise disk_full(exc, folder, made, len(variants)) from None


def disk_full(exc: OSError, folder: RunFolder | None, made: bool, total: int) -> SuiteError:
    """The one line for a full disk: where, what is kept, and how to go on (a run folder this
    attempt made but could not start is removed: nothing half made is left)."""
    import shutil

    writing = f" (writing {exc.filename})" if exc.filename else ""
    if folder is None or (made and not (folder.path / "run.json").is_file()):
        if folder is not None:
            shutil.rmtree(folder.path, ignore_errors=True)
        return SuiteError(f"no space left on the device{writing}: the run could not start")
    saved = len(list((folder.path / "variants").glob("*.json")))
    return SuiteError(f"{folder.path}: no space left on the device{writing}: {saved} of {total} variants are "
                      f"saved there; free some space, then finish the run with: python -m suite run --resume "
                      f"{folder.path}")


def measured(scenario: Scenario, options: RunOptions, bars: Bars, folder: RunFolder, name: str,
             plan: tuple) -> tuple[RunResult, Path]:
    """The variants measured into `folder` (run's work, once the folder is there)."""
    planned_scenario, variants, duplicates = plan
    import torch

    bench = Bench(planned_scenario, options, bars, torch.get_num_threads(), folder, duplicates)
    launcher = LAUNCHERS.get(name)(launch_of(bench))  # the subprocess one starts its fork server: its imports overlap with ours
    from suite.measure.environment import fingerprint
    from suite.report import write_run_reports
    result = RunResult(suite_version=__version__, created=folder.started().created,
                       scenario=scenario.model_dump(mode="json"), environment=fingerprint(),
                       variants=(), quick=options.quick)
    place = {v.name: i for i, v in enumerate(variants)}
    done: dict[str, VariantResult] = {}

    def keep(*finished: VariantResult) -> None:
        nonlocal result
        done.update((v.name, v) for v in finished)
        variants_done = tuple(sorted(done.values(), key=lambda v: place[v.name]))  # in the scenario's order
        result = replace(result, variants=variants_done,
                         selection=scenario.select and recommend(scenario.select, variants_done))
        save_json(result, folder.path / "results.json")

    def record(finished: VariantResult) -> None:
        bars.progress(f"[{place[finished.name] + 1}/{len(variants)}] {ending_line(finished)}")
        keep(finished)
        task.update(len(done))

    def started(variant) -> None:
        task.update(len(done), note=variant.name)
        bars.progress(f"[{place[variant.name] + 1}/{len(variants)}] {variant.name}: started")

    try:
        with bars.task("variants", total=len(variants)) as task:
            to_launch = []
            for variant in variants:
                kept = kept_or_skipped(variant, bench)
                if kept is None:
                    to_launch.append(variant)
                else:
                    started(variant)
                    record(kept)
            for finished in launcher.run(to_launch, started):
                bench.folder.save_variant(finished)
                record(finished)
        timed_again(planned_scenario, variants, launcher, folder, bars, dict(done), keep)
    except KeyboardInterrupt:
        raise RunInterrupted(folder.path, len(result.variants), len(variants)) from None
    save_csv(result, folder.path / "results.csv")
    write_run_reports(result, folder.path)
    return result, folder.path


def timed_again(scenario: Scenario, variants: list, launcher: Any, folder: RunFolder, bars: Bars,
                firsts: dict[str, VariantResult], keep: Callable[..., None]) -> None:
    """Round after round, each variant that measured well has its shapes timed again in a new
    process (up to its measure.processes), the variants' processes interleaved (A B C, A B C, ...)
    so that a change of the machine falls on all alike; each result pooled into the variant's
    (suite.measure.processes), results.json rewritten after each round (each process's result is
    saved in rounds/ as it finishes). Then, for at most BUSY_ROUNDS more rounds, the variants with
    fewer quiet processes than measure.processes (one was timed while the machine was busy, or
    failed), once it is quiet (waiting up to QUIET_WAIT_S): the pooled row leaves busy processes
    out where two quiet ones remain. Rounds an
    earlier attempt of this run finished are kept; the built models are removed at the end."""
    from suite.measure import neighbours
    from suite.measure.processes import busy, merged

    later: dict[str, list] = {name: [] for name in firsts}
    current = dict(firsts)

    def pool(name: str, round_: int, result: VariantResult) -> None:
        later[name].append((round_, result))
        current[name] = merged(firsts[name], later[name])

    most = max((scenario.measure_of(v).processes for v in variants), default=1)
    for round_ in range(2, most + 1 + BUSY_ROUNDS):
        if round_ <= most:
            again = [v for v in variants if firsts[v.name].status == "ok" and scenario.measure_of(v).processes >= round_]
            what = f"variants' process {round_} of {most}"
        else:  # a process was busy (or failed): those variants again, once the machine is quiet (bounded)
            again = [v for v in variants if current[v.name].status == "ok" and scenario.measure_of(v).processes > 1
                     and any(busy(row) or len(row.processes) < scenario.measure_of(v).processes
                             for row in current[v.name].latency)]
            if not again:
                break
            quiet = neighbours.wait_quiet(QUIET_WAIT_S)
            bars.log(f"timing again {len(again)} variant(s) measured while the machine was busy"
                     + ("" if quiet else f" (it is still busy after {QUIET_WAIT_S:g} s)"))
            what = f"busy variants timed again ({round_ - most} of at most {BUSY_ROUNDS})"
        with bars.task(what, total=len(again)) as task:
            to_launch = []
            for variant in again:
                kept = folder.round_result(variant.name, round_)
                if kept is None:
                    to_launch.append(variant)
                    continue
                pool(variant.name, round_, kept)
            finished_now = [len(again) - len(to_launch)]
            for finished in launcher.again(to_launch, round_, lambda v, n=finished_now, bar=task: bar.update(
                    n[0], note=v.name)):
                pool(finished.name, round_, finished)
                finished_now[0] += 1
                task.update(finished_now[0])
        keep(*(current[v.name] for v in again))  # results.json once a round: each process's file is saved already
    folder.drop_built()



def launch_of(bench: Bench) -> Launch:
    """What the launcher gets of the run (not the Bench: a launcher measures nothing itself)."""
    options = bench.options
    return Launch(bench.folder, bench.scenario, bench.bars, bench.measured, bench.timed_again, options.address,
                  options.node, options.cache_dir)


def kept_or_skipped(variant, bench: Bench) -> VariantResult | None:
    """The variant's result saved by an earlier attempt of this run, or skipped now with the reason
    (and saved); None when it is to be measured."""
    finished = bench.folder.finished(variant.name)
    if finished is not None:
        bench.bars.log(f"{variant.name}: {finished.status} in an earlier attempt of this run: kept")
        return finished
    reason = bench.skip_reason(variant)
    if reason is None:
        return None
    skipped = bench.skipped(variant, reason)
    bench.folder.save_variant(skipped)
    return skipped


def resume(run_dir: Path, bars: Bars) -> tuple[RunResult, Path]:
    """Finish an interrupted run in its own folder, with the options it was started with."""
    folder = RunFolder(run_dir)
    scenario, options = started_as(folder)
    for variant in scenario.variants:  # a damaged saved result is refused before anything runs
        folder.finished(variant.name)
    if options.in_process:
        use_sys_path(folder)
    return run(scenario, options, bars, folder)


def new_run_dir(out_dir: Path, scenario_name: str) -> Path:
    """reports/<scenario-name>/<UTC timestamp>/, made unique if two runs start in one second."""
    name = slug(scenario_name, "scenario")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        folder = Path(out_dir) / name / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise SuiteError(f"{out_dir}: cannot make a new run folder for {scenario_name!r}")


def ending_line(result: VariantResult) -> str:
    """'NAME: ok in 12.3 s, p50 1.234 ms at b=1': a variant's end, with its first shape's median."""
    took = f" in {result.seconds:.1f} s" if result.seconds is not None else ""
    if result.status != "ok":
        return f"{result.name}: {result.status}{took}: {result.error}"
    figure = f", p50 {result.latency[0].p50_ms:.4g} ms at {result.latency[0].shape}" if result.latency else ""
    tpot = next((r for r in result.latency if r.metric == "tpot"), None)
    if result.generation and tpot:
        figure = (f", perplexity {result.perplexity:.4g}, {tpot.p50_ms:.4g} ms per output token "
                  f"({tpot.batch_size / tpot.p50_ms * 1e3:.1f} tokens/s) at {tpot.shape}")
    return f"{result.name}: ok{took}{figure}"
