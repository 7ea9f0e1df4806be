"""Accuracy-aware search (a variant's `search:`): the fastest settings of its compression steps that
keep accuracy within a budget, measured on the variant's real backend, after Intel Neural
Compressor's tuning loop and NNCF's accuracy-aware quantization.

Strategies:
- `layer_fallback`: quantize every layer the variant's quantizing step can leave in float (a step
  with `keep_float`); if that misses the goal, rank the layers by their effect, then keep the most
  sensitive in float, fewest first, until the goal is met. `sensitivity: trials` (the default)
  measures each layer's effect alone (that layer in float, the rest quantized: ranked by the goal's
  own measure), a trial per layer; `weights` and `weights_and_inputs` rank them in one pass by
  the error of rounding each one's weights (and input) to int8 (suite.build.sensitivity), for models
  with too many layers to try one by one.
- `bisect`: one numeric setting of a step (a pruning sparsity, a calibration percentile): the
  largest value in [low, high] that meets the goal, to `tolerance`.
- `grid`: the lists a step gives (as a sweep would expand them), in order, until the budget ends.

Every trial is built like a variant (suite.build.building), its accuracy measured on the VALIDATION
split against the uncompressed model's on the same backend (the reference trial), its speed timed
on the backend with a short plan at `batch_size`. The chosen settings then make an ordinary
variant, measured in full on the test split: its test accuracy was never used to choose. Trials
are saved as they finish (search/<variant>.json in the run folder): a run resumed after an
interruption replays them instead of measuring them again. A budget (max_trials, max_time_s)
that runs out returns the best trial found so far, with a warning when it misses the goal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from suite.errors import SuiteError, quote
from suite.config.search_spec import step_with
from suite.progress import Bars
from suite.run.run_folder import RunFolder
from suite.config.scenario import Scenario
from suite.config.scenario import Variant

# A trial's timing: brief, as the tuners' own loops are; the chosen variant is timed in full.
DECODER_REQUESTS = 3  # a decoder trial's timed greedy requests, after one warm-up
TRIAL_PLAN = {"warmup_s": 0.2, "warmup_calls": 3, "min_samples": 30, "max_samples": 2000, "min_time_s": 0.3,
              "max_time_s": 3.0}


class Searcher:
    """Runs one variant's search: trials measured (or replayed from `saved`), budgets kept."""

    def __init__(self, variant: Variant, batch_size: int, measure_trial: Callable[[tuple, str], dict], saved: list[dict],
                 save: Callable[[list[dict]], None], log: Callable[[str], None],
                 rank: Callable[[tuple, list[str]], dict[str, float | None]] | None = None):
        self.variant, self.spec, self.batch_size = variant, variant.search, batch_size
        self.measure_trial, self.save, self.log, self.rank = measure_trial, save, log, rank
        self.ranking: dict | None = None  # a rounding sensitivity: each layer's error, and the pass's time
        self.saved = {trial["key"]: trial for trial in saved}
        self.trials: list[dict] = []
        self.reference: dict | None = None
        self.stopped_by: str | None = None
        self.spent_s = 0.0

    # -- the budget and one trial ------------------------------------------------------------------
    def out_of_budget(self) -> str | None:
        if sum(1 for t in self.trials if t["phase"] != "reference") >= self.spec.max_trials:
            return "max_trials"
        if self.spent_s >= self.spec.max_time_s:
            return "max_time_s"
        return None

    def trial(self, steps: tuple, phase: str, **about: Any) -> dict | None:
        """The trial of `steps` (measured, or replayed), or None once the budget is spent."""
        key = json.dumps([s.dump("method") for s in steps], sort_keys=True)
        known = next((t for t in self.trials if t["key"] == key), None)
        if known is not None:
            return known
        if phase != "reference":
            self.stopped_by = self.stopped_by or self.out_of_budget()
            if self.stopped_by:
                return None
        if key in self.saved and phase != "reference":  # the reference is measured again: its outputs are needed
            found = {**self.saved[key], "replayed": True}
        else:
            started = time.perf_counter()
            found = {"key": key, "phase": phase, **about, **self.measure_trial(steps, phase),
                     "seconds": round(time.perf_counter() - started, 3), "replayed": False}
        self.spent_s += found["seconds"]
        if phase == "reference":
            self.reference = found
        found = {**found, "index": len(self.trials), "meets": self.meets(found)}
        self.trials.append(found)
        self.save(self.trials)
        self.log(describe_trial(found, self.spec.by, phase != "reference"))
        return found

    def closeness(self, trial: dict) -> tuple[float, float]:
        """How near a trial comes to the goal, larger is nearer: by the goal's own measure first
        (agreement where it sets min_agreement, else accuracy, or for a decoder its KL divergence
        where the goal bounds it, else perplexity), then agreement or accuracy."""
        agreement = trial.get("agreement") or 0.0
        if self.spec.goal.max_kld_mean is not None and trial.get("kld_mean") is not None:
            other = -trial["kld_mean"]
        elif trial.get("perplexity") is not None:
            other = -trial["perplexity"]
        else:
            other = trial.get("val_accuracy") or 0.0
        return (agreement, other) if self.spec.goal.min_agreement is not None else (other, agreement)

    def slower(self, fastest: dict, trial: dict) -> bool:
        """Whether `trial` is slower than `fastest` by the one rule, on their samples (taken in this
        one process: blind to what differs between processes, so ties are if anything too few);
        a replayed trial has no samples here, and only its figure is compared."""
        from suite.measure.processes import percentile_of
        from suite.measure.significance import compare_independent

        if not fastest.get("samples_ms") or not trial.get("samples_ms"):
            return trial["speed_ms"] > fastest["speed_ms"]
        verdict = compare_independent(fastest["samples_ms"], trial["samples_ms"], percentile_of(self.spec.by)).verdict()
        return verdict == "slower"

    def meets(self, trial: dict) -> bool:
        if trial.get("error") or self.reference is None:
            return False
        goal = self.spec.goal
        if goal.max_accuracy_drop is not None:
            if trial.get("val_accuracy") is None or self.reference.get("val_accuracy") is None:
                return False
            if self.reference["val_accuracy"] - trial["val_accuracy"] > goal.max_accuracy_drop + 1e-12:
                return False
        if goal.max_perplexity_increase is not None:
            if not trial.get("perplexity") or not self.reference.get("perplexity"):
                return False
            if trial["perplexity"] / self.reference["perplexity"] - 1 > goal.max_perplexity_increase + 1e-12:
                return False
        if goal.max_kld_mean is not None and (trial.get("kld_mean") is None or trial["kld_mean"] > goal.max_kld_mean + 1e-12):
            return False
        if goal.min_top1_agreement is not None and (trial.get("top1_agreement") or 0.0) < goal.min_top1_agreement - 1e-12:
            return False
        return goal.min_agreement is None or (trial.get("agreement") or 0.0) >= goal.min_agreement

    # -- strategies --------------------------------------------------------------------------------
    def run(self) -> dict:
        reference = self.trial((), "reference")
        if reference.get("error"):
            raise SuiteError(f"search: the uncompressed model failed on backend {self.variant.backend.name}: "
                             f"{reference['error']}")
        {"layer_fallback": self.layer_fallback, "bisect": self.bisect, "grid": self.grid}[self.spec.strategy]()
        return self.outcome()

    def layer_fallback(self) -> None:
        index = next(i for i, s in enumerate(self.variant.compress) if "keep_float" in type(s.params).model_fields)
        steps = self.variant.compress
        every = self.trial(steps, "all quantized")
        if every is None or every["meets"] or every.get("error"):
            return
        layers = every.get("quantized_layers") or []

        def keeping(kept: list[str]) -> tuple:
            ordered = tuple(name for name in layers if name in kept)  # one key per set, whatever the order
            return steps[:index] + (step_with(steps[index], "keep_float", ordered),) + steps[index + 1:]

        if self.spec.sensitivity != "trials":
            ranked = self.ranked_by_rounding(steps[:index], layers)
        else:
            alone = {}
            for layer in layers:
                found = self.trial(keeping([layer]), "sensitivity", kept_float=[layer])
                if found is None:
                    return
                alone[layer] = found
            ranked = sorted(layers, key=lambda name: self.closeness(alone[name]), reverse=True)
        for count in range(1, len(ranked)):  # every layer in float would be the uncompressed model
            found = self.trial(keeping(ranked[:count]), "fallback", kept_float=ranked[:count])
            if found is None or found["meets"]:
                return

    def ranked_by_rounding(self, before: tuple, layers: list[str]) -> list[str]:
        """`layers`, the largest rounding error first (those it could not score last, in order)."""
        started = time.perf_counter()
        errors = self.rank(before, layers)
        seconds = time.perf_counter() - started
        self.spent_s += seconds
        self.ranking = {"by": self.spec.sensitivity, "seconds": round(seconds, 3), "errors": errors}
        unscored = [name for name in layers if errors.get(name) is None]
        self.log(f"search: {len(layers) - len(unscored)} layers ranked by the error of rounding their "
                 f"{self.spec.sensitivity.replace('_', ' ')} in {seconds:.1f} s"
                 + (f"; {len(unscored)} had no weight to round ({', '.join(unscored[:3])}), ranked last" if unscored else ""))
        return sorted((n for n in layers if n not in unscored), key=lambda n: errors[n], reverse=True) + unscored

    def bisect(self) -> None:
        spec = self.spec
        index = next(i for i, s in enumerate(self.variant.compress) if spec.param in type(s.params).model_fields)
        integer = type(getattr(self.variant.compress[index].params, spec.param)) is int
        steps = self.variant.compress

        def at(value: float) -> dict | None:
            value = round(value) if integer else value
            changed = steps[:index] + (step_with(steps[index], spec.param, value),) + steps[index + 1:]
            return self.trial(changed, "bisect", value=value)

        tolerance = spec.tolerance or (1 if integer else (spec.high - spec.low) / 16)
        high = at(spec.high)
        if high is None or high["meets"]:
            return
        low = at(spec.low)
        if low is None or not low["meets"]:
            return
        lo, hi = spec.low, spec.high
        while hi - lo > tolerance:
            middle = (lo + hi) / 2
            if integer and round(middle) in (round(lo), round(hi)):
                break
            found = at(middle)
            if found is None:
                return
            lo, hi = (middle, hi) if found["meets"] else (lo, middle)

    def grid(self) -> None:
        import itertools

        steps = self.variant.compress
        axes = self.spec.grid
        for values in itertools.product(*(axis.values for axis in axes)):
            changed = list(steps)
            for axis, value in zip(axes, values, strict=False):
                changed[axis.step] = step_with(changed[axis.step], axis.param, value)
            if self.trial(tuple(changed), "grid", value={a.param: v for a, v in zip(axes, values, strict=False)}) is None:
                return

    # -- the result --------------------------------------------------------------------------------
    def outcome(self) -> dict:
        """The chosen trial (bisect: the largest value that meets the goal; else, of those that do
        and are tied with the fastest by the one rule (suite.measure.significance), the nearest to
        the goal's quality; where none does, the closest to the goal) and the search's record."""
        tried = [t for t in self.trials if t["phase"] != "reference" and not t.get("error")]
        meeting = [t for t in tried if t["meets"]]
        if meeting and self.spec.strategy == "bisect":
            chosen = max(meeting, key=lambda t: t["value"])
        elif meeting:
            fastest = min(meeting, key=lambda t: t["speed_ms"])
            tied = [t for t in meeting if t is fastest or not self.slower(fastest, t)]
            chosen = max(tied, key=self.closeness)
        elif tried:
            chosen = max(tried, key=self.closeness)
        else:
            raise SuiteError("search: no trial could be measured: " + "; ".join(
                f"trial {t['index']}: {t['error']}" for t in self.trials if t.get("error"))[:400])
        return {"strategy": self.spec.strategy, "goal": self.spec.goal.model_dump(exclude_none=True),
                "by": self.spec.by, "batch_size": self.batch_size, "split": "validation",
                "met": bool(meeting), "stopped_by": self.stopped_by or "done", "chosen": chosen["index"],
                "kept_float": chosen.get("kept_float"), "value": chosen.get("value"),
                "seconds": round(self.spent_s, 3), "trials": [public(t) for t in self.trials], "ranking": self.ranking,
                "replayed": sum(1 for t in self.trials if t.get("replayed"))}

    def chosen_steps(self, outcome: dict) -> tuple:
        """The chosen trial's steps, as PluginRefs (rebuilt from the variant's, the trial's settings)."""
        trial = self.trials[outcome["chosen"]]
        settings = json.loads(trial["key"])
        steps = []
        for step, dumped in zip(self.variant.compress, settings, strict=False):
            for key, value in dumped.items():
                if key != "method" and getattr(step.params, key, None) != value:
                    step = step_with(step, key, value)
            steps.append(step)
        return tuple(steps)


TRIAL_NUMBERS = ("seconds", "speed_ms", "val_accuracy", "agreement", "perplexity", "kld_mean", "top1_agreement")


def trial_problem(trial: dict) -> str | None:
    """What keeps a saved trial from being replayed (a field missing, or of the wrong type); None
    where it can be."""
    import math

    if not isinstance(trial.get("phase"), str):
        return "'phase' is missing or not text"
    if trial.get("error") is not None and not isinstance(trial["error"], str):
        return "'error' is not text"
    for field in TRIAL_NUMBERS:
        value = trial.get(field)
        needed = field == "seconds" or (field == "speed_ms" and trial.get("error") is None)
        if value is None and not needed:
            continue
        if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
            return f"{field!r} is " + ("missing" if value is None else f"{quote(value, 40)}, not a number of 0 or more")
    for field in ("kept_float", "steps", "quantized_layers"):
        if trial.get(field) is not None and not isinstance(trial[field], list):
            return f"{field!r} is not a list"
    if not all(isinstance(name, str) for name in trial.get("kept_float") or ()):
        return "'kept_float' holds other than layer names"
    return None


def replayable(saved: list[dict], where: Any, log: Callable[[str], None]) -> list[dict]:
    """The saved trials that can be replayed; each other one said in one line (and measured again)."""
    kept = []
    for i, trial in enumerate(saved):
        problem = trial_problem(trial)
        if problem is None:
            kept.append(trial)
        else:
            log(f"{where}: trials[{i}]: {problem}: that trial is measured again")
    return kept


def public(trial: dict) -> dict:
    """What results.json keeps of a trial."""
    return {key: trial.get(key) for key in ("index", "phase", "kept_float", "value", "val_accuracy", "perplexity",
                                            "kld_mean", "top1_agreement", "agreement", "speed_ms", "meets", "seconds", "replayed", "error", "steps")}


def describe_trial(trial: dict, by: str, judged: bool = True) -> str:
    what = {"reference": "uncompressed", "all quantized": "every layer quantized"}.get(trial["phase"], trial["phase"])
    if trial.get("kept_float"):
        what += f", {len(trial['kept_float'])} in float ({', '.join(trial['kept_float'][:3])}" + (
            ", ...)" if len(trial["kept_float"]) > 3 else ")")
    if trial.get("value") is not None:
        what += f", {trial['value']}"
    if trial.get("error"):
        return f"search trial {trial['index']} ({what}): failed: {trial['error']}"
    accuracy = trial.get("val_accuracy")
    shown = (f"val perplexity {trial['perplexity']:.4f}" if trial.get("perplexity") is not None
             else f"val acc {accuracy:.4f}" if accuracy is not None else "val acc -")
    if trial.get("kld_mean") is not None:
        shown += f", KL divergence {trial['kld_mean']:.4g}, top-1 {trial['top1_agreement']:.4f}"
    return (f"search trial {trial['index']} ({what}): {shown}, agreement {trial.get('agreement') or 0:.4f}, "
            f"{by} {trial['speed_ms']:.4g} ms" + (" (replayed)" if trial.get("replayed") else "")
            + ((" - meets the goal" if trial["meets"] else " - misses the goal") if judged else ""))


def speed(samples_s: tuple[float, ...], by: str) -> float:
    """The `by` figure (a LatencyStats field) of a trial's samples, in ms."""
    from suite.measure.stats import summarize

    return getattr(summarize([sample * 1e3 for sample in samples_s]), by)


def search_variant(builder: Any, scenario: Scenario, variant: Variant, folder: RunFolder, bars: Bars) -> tuple[Any, dict]:
    """Run `variant`'s search; return the variant with the chosen settings (no `search`) and the
    search's record. Trials go to the run folder as they finish."""
    measure = scenario.measure_of(variant)
    batch = variant.search.batch_size or measure.batch_sizes[0]
    reference_outputs: list[Any] = []

    def measure_trial(steps: tuple, phase: str) -> dict:
        try:
            built = builder.build(variant.model_copy(update={"compress": steps, "search": None}))
            run = builder.prepare(built)
        except SuiteError as exc:
            return {"error": str(exc), "steps": [s.dump("method") for s in steps]}
        problem = built.task.search_problem(built, variant.search.goal) if phase == "reference" else None
        if problem:
            raise SuiteError(f"{scenario.source}: variants: {variant.name}: {problem}")
        with bars.task(f"{variant.name}: search trial ({phase})", total=None):
            found, outputs, samples_s = built.task.judge(run, built, measure, batch, reference_outputs or None,
                                                         scenario.source)
        if phase == "reference":
            reference_outputs[:] = [outputs]
        layers = next((r.get("quantized_layers") for r in built.records if r.get("quantized_layers") is not None), None)
        return {**found, "speed_ms": speed(samples_s, variant.search.by), "batch_size": batch,
                "samples_ms": [x * 1e3 for x in samples_s],
                "samples": len(samples_s), "quantized_layers": layers, "steps": [s.dump("method") for s in steps]}

    def rank(before: tuple, layers: list[str]) -> dict[str, float | None]:
        from suite.build.sensitivity import weight_rounding_errors

        built = builder.build(variant.model_copy(update={"compress": before, "search": None}))
        with bars.task(f"{variant.name}: ranking {len(layers)} layers by rounding error", total=None):
            return weight_rounding_errors(built.model.eval(), layers, built.task.sample_batches(
                built, measure.eval_batch_size or max(measure.batch_sizes)), variant.search.sensitivity != "weights")

    saved = replayable(folder.search_trials(variant.name), folder.search_file(variant.name), bars.log)
    def save(trials: list[dict]) -> None:  # without each trial's samples: only its figures are replayed
        folder.save_search_trials(variant.name, [{k: v for k, v in t.items() if k != "samples_ms"} for t in trials])

    searcher = Searcher(variant, batch, measure_trial, saved, save, bars.log, rank)
    outcome = searcher.run()
    return variant.model_copy(update={"compress": searcher.chosen_steps(outcome), "search": None}), outcome


def search_warnings(outcome: dict) -> list[str]:
    """What a search's result must say: a goal not met, a choice no faster than the uncompressed model."""
    found = [search_missed(outcome)] if not outcome["met"] else []
    trials = outcome["trials"]
    reference = next((t for t in trials if t["phase"] == "reference"), None)
    chosen = trials[outcome["chosen"]]
    if reference and reference.get("speed_ms") and chosen.get("speed_ms") and chosen["speed_ms"] >= reference["speed_ms"]:
        found.append(f"search: the chosen trial ({outcome['by']} {chosen['speed_ms']:.4g} ms at batch "
                     f"{outcome['batch_size']}) is not faster than the uncompressed model on this backend "
                     f"({reference['speed_ms']:.4g} ms): the compression buys size, not speed, here")
    return found


def search_missed(outcome: dict) -> str:
    """The warning of a search whose budget ran out before a trial met the goal."""
    goal = ", ".join(f"{key} {value:g}" for key, value in outcome["goal"].items())
    why = ("in any setting the strategy tries" if outcome["stopped_by"] == "done"
           else f"before {outcome['stopped_by']} ran out")
    return f"search: no trial met the goal ({goal}) {why}: the closest one (trial {outcome['chosen']}) was measured"
