"""One variant measured in this process: built (suite.build.building), then its quality (accuracy and
agreement, or perplexity and greedy fidelity) and its speed, into a VariantResult. A failure is
recorded in the result, never raised. Where the variant runs is the launcher's business
(suite.run.launchers); the isolated child's entry point is `variant_in_folder` here.
"""

from __future__ import annotations

import errno
import time
import traceback
from dataclasses import replace
from typing import Any

from suite.build.building import Builder, Built
from suite.build.search import search_variant, search_warnings
from suite.config.scenario import Scenario, Variant, format_conflict, task_conflict
from suite.errors import SuiteError, first_line, one_line
from suite.measure import footprint
from suite.measure.measuring import Context
from suite.phases import Phases, with_start_up
from suite.progress import Bars
from suite.registry import BACKENDS, METHODS, MODELS
from suite.results import VariantResult
from suite.run.run_folder import RunFolder
from suite.run.run_plan import RunOptions

ONE_PROCESS = ("intervals within one process (measure.processes 1, as --quick sets unless the scenario says): "
               "they do not cover what differs between processes")


class Bench:
    """Measures variants one by one in this process; test-set outputs (for agreement) go through
    the run folder."""

    def __init__(self, scenario: Scenario, options: RunOptions, bars: Bars, default_threads: int, folder: RunFolder,
                 duplicates: dict[str, str] | None = None):
        self.scenario, self.options, self.bars, self.folder = scenario, options, bars, folder
        self.duplicates = duplicates or {}
        self.builder = Builder(scenario, bars, default_threads, options.cache_dir)

    @property
    def phases(self) -> Any:
        return self.builder.phases

    def skip_reason(self, variant: Variant) -> str | None:
        backend = BACKENDS.get(variant.backend.name)(variant.backend.params)
        return (self.moved_away(variant) or backend.available()
                or methods_unavailable(variant, backend.describe().get("device", "cpu")))

    def run_variant(self, variant: Variant) -> VariantResult:
        """Skip or measure the variant in this process (the isolated child's work)."""
        reason = self.skip_reason(variant)
        return self.skipped(variant, reason) if reason else self.measured(variant)

    def skipped(self, variant: Variant, reason: str) -> VariantResult:
        self.bars.log(f"{variant.name}: skipped: {reason}")
        return replace(base_result(self.scenario, variant), status="skipped", error=reason)

    def measured(self, variant: Variant) -> VariantResult:
        """Measure the variant in this process; a failure is recorded in the result."""
        base = base_result(self.scenario, variant)
        start = time.perf_counter()
        self.builder.phases = Phases()
        try:
            searched = None
            if variant.search is not None:
                with self.phases.folded("search"):
                    variant, searched = search_variant(self.builder, self.scenario, variant, self.folder, self.bars)
                base = replace(base_result(self.scenario, variant), search=searched)
            later = self.scenario.measure_of(variant).processes > 1
            built = self.builder.build(variant, for_later=later)
            if later:  # what its later processes build it from (`timed_again`)
                self.folder.save_built(variant.name, self.builder.for_later)
            result = self._measure(base, built)
            if searched is not None:
                result = replace(result, warnings=result.warnings + tuple(search_warnings(searched)))
            if not later:
                result = replace(result, warnings=(*result.warnings, ONE_PROCESS))
        except Exception as exc:
            result = self._failure(base, exc)
        return self._ended(result, start)

    def timed_again(self, variant: Variant, round_: int) -> VariantResult:
        """The variant's shapes timed in this process, its `round_`-th (suite.measure.processes):
        built as its first process left it (suite.run.run_folder's `built`), prepared, timed; only
        the latency rows and their warnings. A failure is recorded in the result, never raised."""
        base = base_result(self.scenario, variant)
        start = time.perf_counter()
        self.builder.phases = Phases()
        try:
            kept = self.folder.built(variant.name)
            if kept is None and variant.search is not None:
                raise SuiteError(f"{variant.name}: its first process left no record of what its search chose "
                                 "(the run folder's built/ file): cannot time it again")
            built = self.builder.build(variant, kept)
            rows, notes = built.task.time_again(self, built, round_)
            result = replace(base, latency=rows, warnings=notes)
        except Exception as exc:
            result = self._failure(base, exc)
        return self._ended(result, start)

    def _failure(self, base: VariantResult, exc: Exception) -> VariantResult:
        """The failed result for `exc`, raised while measuring (called in its `except`): bad input
        in one line; a bug or a backend crash with its traceback logged. A full disk stops the run
        (suite.run.runner): re-raised."""
        if isinstance(exc, SuiteError):
            return self._failed(base, exc, one_line(str(exc)))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise exc
        self.bars.log(traceback.format_exc())
        return self._failed(base, exc, f"{type(exc).__name__}: {first_line(exc)}")

    def _ended(self, result: VariantResult, start: float) -> VariantResult:
        """`result` with the seconds since `start` and where they went."""
        seconds = round(time.perf_counter() - start, 3)
        return replace(result, seconds=seconds, phases=with_start_up(self.phases.seconds, seconds))

    def moved_away(self, variant: Variant) -> str | None:
        """Why a variant that --backend moved is not run: it cannot run there, or repeats another."""
        conflict = format_conflict(variant, self.scenario.model_of(variant)) or task_conflict(
            variant, self.scenario.model_of(variant), variant.dataset or self.scenario.dataset,
            self.scenario.measure_of(variant))
        if conflict:
            return conflict[1]
        if variant.name in self.duplicates:
            return f"with --backend {variant.backend.name} it is the same as variant {self.duplicates[variant.name]!r}"
        return None

    def _failed(self, base: VariantResult, exc: Exception, message: str) -> VariantResult:
        self.bars.log(f"{base.name}: failed: {message}")
        if isinstance(exc, SuiteError) and exc.details:  # the backend's whole message: in the variant's log, not on screen
            try:
                with open(self.folder.log_file(base.name), "a", encoding="utf-8") as log:
                    log.write(f"{base.name}: what was said in full: {exc.details}\n")
            except OSError:  # a full disk: the one line above is all there is
                pass
        return replace(base, status="failed", error=message, error_type=type(exc).__name__)

    def _measure(self, base: VariantResult, built: Built) -> VariantResult:
        """The variant measured by its task (suite.tasks), with what every variant's result says."""
        device = built.backend.describe().get("device", "cpu")
        footprint.reset_gpu_peak(device)
        params = footprint.parameter_count(built.model)
        fields = built.task.measure(self, built)
        return replace(base, **fields, params=params, peak_rss_bytes=footprint.peak_rss_bytes(),
                       gpu_memory=footprint.gpu_peak_memory(device))

    def context(self, variant: Variant, round_: int = 1) -> Context:
        """What the timing code needs of this run: progress bars, names for messages, seed, phases,
        and which of the variant's processes this is."""
        name = variant.name if round_ == 1 else f"{variant.name} (process {round_})"
        return Context(self.bars, name, self.scenario.source, self.scenario.seed, self.phases, round_)


def base_result(scenario: Scenario, variant: Variant) -> VariantResult:
    """What a variant's result says before anything is measured: which variant it is."""
    model = scenario.model_of(variant).name
    return VariantResult(name=variant.name, model=model, backend=variant.backend.name,
                         compress=tuple(step.dump("method") for step in variant.compress), task=MODELS.get(model).task)


def methods_unavailable(variant: Variant, device: str) -> str | None:
    """Why one of the variant's compression steps cannot run on `device`, or None."""
    for step in variant.compress:
        reason = METHODS.get(step.name).unavailable(device)
        if reason:
            return f"{step.name}: {reason}"
    return None


def variant_in_folder(folder: RunFolder, name: str, bars: Bars, round_: int = 1) -> VariantResult:
    """Measure one variant of the run in `folder` in this process (the isolated child's work):
    all of it in its first process, its shapes timed again in a later one."""
    import torch

    from suite.run.run_plan import use_sys_path, variant_of_run

    use_sys_path(folder)
    scenario, options, variant, duplicates = variant_of_run(folder, name)
    bench = Bench(scenario, options, bars, torch.get_num_threads(), folder, duplicates)
    return bench.run_variant(variant) if round_ == 1 else bench.timed_again(variant, round_)
