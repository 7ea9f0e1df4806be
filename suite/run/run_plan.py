"""What a run runs: its options, and the variants they select. Run-wide switches that change
variants are transformations of the validated Scenario (`on_backend`: a new Scenario), so the
layers below see a scenario, not flags.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from suite.config.params import first_error
from suite.config.scenario import Measure, PluginRef, Scenario, Variant
from suite.config.scenario import load as load_scenario
from suite.errors import SuiteError
from suite.registry import BACKENDS, UnknownName, did_you_mean
from suite.run.run_folder import RunFolder

# --quick: enough to prove the pipeline works end to end, not to benchmark anything.
QUICK_MEASURE = {"warmup_s": 0.02, "warmup_calls": 1, "min_samples": 10, "max_samples": 50, "min_time_s": 0.0,
                 "max_time_s": 0.3, "idle_baseline_s": 0.1, "energy_window_s": 0.2, "server_queries": 10,
                 "rate_steps": 3}
# (fidelity_prompts is not capped: its default, 8 prompts of 32 tokens, is a timed shape's, whose
# compiled graph it reuses; a count of its own costs a compiled decoder minutes of compiling.)
QUICK_GENERATE = {"new_tokens": 4, "perplexity_tokens": 256, "fidelity_tokens": 6, "text_tokens": 8,
                  "server_requests": 4, "server_min_s": 1.0}  # each at most this
QUICK_TEXTS = 1  # text prompts written (each of another length: a compiled decoder compiles for it)
QUICK_PROMPT_LENS = 1  # prompt lengths timed (likewise: each is a graph more for a compiled decoder)
QUICK_SEQ_LENS = 2  # token inputs' lengths timed: two show the padding; MiniLM's third (256) took 25 s of bert's 90
QUICK_TRAIN = {"max_epochs": 2, "max_batches": 10}  # each at most this
QUICK_SEARCH = {"max_trials": 6, "max_time_s": 120.0}  # each at most this


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("reports")
    quick: bool = False
    only: tuple[str, ...] = ()
    cache_dir: Path | None = None
    backend: str | None = None  # run every variant on this backend (default params) instead of its own
    in_process: bool = False  # every variant in this process, whatever the scenario's isolation says
    launcher: str | None = None  # where variants run (suite.run.launchers); None: as the scenario's isolation says
    address: str | None = None  # --launcher ray: the cluster's address; None: RAY_ADDRESS, a local cluster
    node: str | None = None  # --launcher ray: every variant on this node (a fleet run's share of one node)

    @classmethod
    def from_dict(cls, data: dict, where: str = "run.json") -> RunOptions:
        from suite.config.params import checked

        return checked(cls, data, f"{where}: options")


def planned(scenario: Scenario, options: RunOptions) -> tuple[Scenario, list[Variant], dict[str, str]]:
    """The scenario as the options transform it, the variants to run in order, and the duplicates."""
    scenario, duplicates = on_backend(quickened(scenario) if options.quick else scenario, options.backend)
    return scenario, select_variants(scenario, options.only), duplicates


def quickened(scenario: Scenario) -> Scenario:
    """The scenario as a smoke test (`--quick`): brief timing (QUICK_MEASURE) of the first
    QUICK_SEQ_LENS lengths of token inputs, short generation (QUICK_GENERATE), capped training
    (QUICK_TRAIN) and searches (QUICK_SEARCH), and no profile
    and one process per shape unless the scenario asks otherwise, in the scenario's measure
    settings and in every variant's own."""
    def capped(settings: Any, caps: dict) -> dict:
        return {k: min(v, getattr(settings, k)) if getattr(settings, k) is not None else v for k, v in caps.items()}

    def quick(measure: Measure) -> Measure:
        generate = measure.generate.model_copy(update={**capped(measure.generate, QUICK_GENERATE),
                                                       "texts": measure.generate.texts[:QUICK_TEXTS],
                                                       "prompt_lens": measure.generate.prompt_lens[:QUICK_PROMPT_LENS]})
        profile = measure.profile and "profile" in measure.model_fields_set  # on only where the scenario says so
        processes = measure.processes if "processes" in measure.model_fields_set else 1  # likewise
        seq_lens = measure.seq_lens[:QUICK_SEQ_LENS] if measure.seq_lens else measure.seq_lens
        return measure.model_copy(update={**QUICK_MEASURE, "generate": generate, "profile": profile,
                                          "processes": processes, "seq_lens": seq_lens})

    def quick_variant(v: Variant) -> Variant:
        update = {"measure": quick(v.measure)} if v.measure else {}
        if v.search is not None:
            update["search"] = v.search.model_copy(update=capped(v.search, QUICK_SEARCH))
        return v.model_copy(update=update) if update else v

    variants = tuple(quick_variant(v) for v in scenario.variants)
    return scenario.model_copy(update={"measure": quick(scenario.measure), "variants": variants,
                                       "train": scenario.train.model_copy(update=capped(scenario.train, QUICK_TRAIN))})


def select_variants(scenario: Scenario, only: tuple[str, ...]) -> list[Variant]:
    """The variants to run, in order, with each agreement reference moved before its users."""
    names = [v.name for v in scenario.variants]
    for name in only:
        if name not in names:
            raise SuiteError(f"{scenario.source}: --only: unknown variant {name!r}{did_you_mean(name, names)}")
    chosen = [v for v in scenario.variants if not only or v.name in only]
    first = [v for v in chosen if v.name == scenario.baseline]
    return first + [v for v in chosen if v.name != scenario.baseline]


def on_backend(scenario: Scenario, name: str | None) -> tuple[Scenario, dict[str, str]]:
    """The scenario with every variant moved to backend `name` with its default params (`suite
    run --backend`), and the variants that became identical to an earlier one (name -> earlier
    name): they are not run twice."""
    if name is None:
        return scenario, {}
    try:
        BACKENDS.check(name)
    except UnknownName as exc:
        raise SuiteError(f"--backend: {exc}") from None
    try:
        backend = PluginRef(name, BACKENDS.get(name).Params())
    except ValidationError as exc:  # a backend with settings it cannot do without (a server's url)
        raise SuiteError(f"--backend {name}: it needs settings of its own ({first_error(exc)[1]}): "
                         "give it in the scenario's variants instead") from None
    moved = [v.model_copy(update={"backend": backend}) for v in scenario.variants]
    first: dict[str, str] = {}  # a variant's settings, name aside -> the first variant with them
    same: dict[str, str] = {}
    for v in moved:
        key = json.dumps(v.model_dump(mode="json", exclude={"name"}), sort_keys=True)
        if key in first:
            same[v.name] = first[key]
        else:
            first[key] = v.name
    return scenario.model_copy(update={"variants": tuple(moved)}), same


def variant_of_run(folder: RunFolder, name: str) -> tuple[Scenario, RunOptions, Variant, dict[str, str]]:
    """Variant `name` of the run in `folder`, with the run's options and the scenario and
    duplicates as they planned them: what a process measuring one variant of that run needs."""
    scenario, options = started_as(folder)
    scenario, variants, duplicates = planned(scenario, options)
    [variant] = [v for v in variants if v.name == name]
    return scenario, options, variant, duplicates


def started_as(folder: RunFolder) -> tuple[Scenario, RunOptions]:
    """The scenario (its text as saved in the run folder) and options a run was started with."""
    started = folder.started()
    options = RunOptions.from_dict(started.options, str(folder.path / "run.json"))
    return load_scenario(folder.path / "scenario.yaml", origin=started.scenario_file), options


def use_sys_path(folder: RunFolder) -> None:
    """Find modules where the run's first process found them: the user's own model factories."""
    sys.path[:0] = [p for p in folder.started().sys_path if p not in sys.path]
