"""Classifiers (and any model judged by its outputs on labelled inputs): accuracy on the test
split, agreement with the reference variant's outputs (top-1 and cosine), calls timed at every
batch size (and sequence length), profiled operator by operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from suite.config.scenario import Fidelity, Measure, Select, Variant
from suite.config.search_spec import Goal
from suite.tasks.base import Task, reference_outputs, run_fields

# The engine's types only: a scenario asks its tasks about its settings, and reading one stays light.
if TYPE_CHECKING:
    from suite.build.building import Built, Ready
    from suite.build.training import EpochCallback
    from suite.results import VariantResult
    from suite.run.bench import Bench


@dataclass(frozen=True)
class ClassifyTask(Task):
    name: str = "classify"
    description: str = "a model judged by accuracy"
    judged: str = "val acc"

    def conflict(self, what: str, model: Any, variant: Variant, measure: Measure) -> tuple[tuple, str] | None:
        if measure is not None and measure.mode == "server" and measure.latency_bound_ms is None:
            return ("measure", "latency_bound_ms"), f"{what}: mode server needs latency_bound_ms"
        goal = variant.search.goal if variant.search is not None else None
        for name in ("max_perplexity_increase", "max_kld_mean", "min_top1_agreement"):
            if goal is not None and getattr(goal, name) is not None:
                return ("search", "goal", name), f"{what}: use max_accuracy_drop or min_agreement"
        return None

    def prepare(self, built: Built, source: str) -> Any:
        return built.backend.prepare(built.model, built.data.test.x[:1], built.data.train.x)

    def measure(self, bench: Bench, built: Built) -> dict:
        from suite.measure import footprint
        from suite.measure.measuring import measure_model, outputs_on
        from suite.measure.profiling import flops_model, profile_variant, run_limits

        variant, backend, measure, data, model = built.variant, built.backend, built.measure, built.data, built.model
        device = backend.describe().get("device", "cpu")
        size = footprint.serialized_size_bytes(model)
        run_model = bench.builder.prepare(built)
        with bench.phases("accuracy"):
            outputs = outputs_on(run_model, backend, data.test.x, measure)
        with bench.phases("agreement"):
            bench.folder.save_outputs(variant.name, outputs)
            reference, fidelity, notes = self.agreement(bench, built, outputs)
        timed = measure_model(run_model, backend, data, measure, bench.context(variant))
        profiled = None
        if measure.profile:
            with bench.phases("profile"), bench.bars.task(f"{variant.name}: where the time goes", total=None):
                counted = flops_model(model, bench.builder.uncompressed(built.model_ref, data), len(variant.compress))
                profiled = profile_variant(run_model, backend, variant.backend.name, data, timed.latency, size,
                                           counted, run_limits(bench.folder, device))
        accuracy, accuracy_reason = accuracy_of(outputs, data, built.weights)
        return {"profile": profiled, "accuracy": accuracy, "accuracy_reason": accuracy_reason,
                "agreement": fidelity.pop("top1", None), "fidelity": fidelity or None, "agreement_with": reference,
                "size_bytes": size, **timed.fields(), "warnings": tuple(notes) + timed.notes, **run_fields(built)}

    def time_again(self, bench: Bench, built: Built, round_: int) -> tuple[tuple, list[str]]:
        """Every shape timed in this later process of the variant."""
        from suite.measure.measuring import input_shapes, shape_of, time_shapes

        run_model = bench.builder.prepare(built)
        shapes = [shape_of(run_model, built.backend, built.data, b, s)
                  for b, s in input_shapes(built.measure, built.data, bench.scenario.source)]
        rows, notes = time_shapes(shapes, built.backend, built.measure, bench.context(built.variant, round_))
        return tuple(rows), notes

    def agreement(self, bench: Bench, built: Built, outputs: Any) -> tuple[str, dict, list[str]]:
        """The reference variant, how closely `outputs` follow its outputs, and warnings."""
        from suite.measure import quality

        reference, expected = reference_outputs(bench, built)
        if expected is None:
            return reference, {}, [f"agreement not measured: reference variant {reference!r} did not run or failed"]
        if expected.shape != outputs.shape:
            return reference, {}, [f"agreement not measured: outputs of shape {outputs.shape} against "
                                   f"{expected.shape} from {reference!r}"]
        fidelity = quality.agreement(outputs, expected)
        return reference, fidelity, fidelity_warnings(fidelity, reference, bench.scenario.fidelity)

    def ready(self, built: Built, prepared: Any, threads: int, source: str) -> Ready:
        from suite.build.building import Ready
        from suite.measure.measuring import input_shapes

        return Ready(prepared, built.backend, built.data, threads, input_shapes(built.measure, built.data, source),
                     task=self)

    def paired(self, sides: list, batch_size: int, seq_len: int | None, plan: Any, bar: Any) -> dict:
        from suite.analysis.gate import time_rounds

        return {"call": time_rounds([side.call(batch_size, seq_len) for side in sides], sides, plan, bar)}

    def search_problem(self, built: Built, goal: Goal) -> str | None:
        if not built.data.labelled and goal.max_accuracy_drop is not None:
            return f"search.goal.max_accuracy_drop: dataset {built.data.name!r} has no labels: use min_agreement"
        return None

    def judge(self, run: Any, built: Built, measure: Measure, batch: int, reference: list | None,
              source: str) -> tuple[dict, Any, tuple[float, ...]]:
        """Accuracy and top-1 agreement on the validation split, call times at `batch` (the first
        sequence length timed, for token inputs)."""
        from suite.build.search import TRIAL_PLAN
        from suite.measure import quality, timing
        from suite.measure.measuring import input_shapes, outputs_on, shape_of

        data, backend = built.data, built.backend
        outputs = outputs_on(run, backend, data.val.x, measure)
        seq_len = next((s for b, s in input_shapes(measure, data, source)), None)
        timed = timing.measure(shape_of(run, backend, data, batch, seq_len).call, backend.synchronize,
                               timing.TimingPlan(**TRIAL_PLAN))
        return ({"val_accuracy": quality.accuracy(outputs, data.val.y) if data.labelled else None,
                 "agreement": quality.agreement(outputs, reference[0] if reference else outputs)["top1"],
                 "seq_len": seq_len}, outputs, timed.samples_s)

    def sample_batches(self, built: Built, batch_size: int) -> list:
        """SAMPLES validation inputs in batches of `batch_size`."""
        from suite.build.sensitivity import SAMPLES

        inputs = built.data.val.x[:SAMPLES]
        return [inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size)]

    def train(self, model: Any, data: Any, config: Any, seed: int, on_epoch: EpochCallback) -> dict:
        from suite.build.training import train

        return train(model, data, config, seed, on_epoch)

    def select(self, v: VariantResult, reference: VariantResult | None, select: Select) -> tuple[dict, list[str], str | None]:
        """By accuracy drop against the reference."""
        if select.max_accuracy_drop is None:
            return {}, [], "not a generative decoder, and select has no max_accuracy_drop"
        drop, reason = accuracy_drop(v, reference)
        if reason:
            return {}, [], reason
        over = ["max_accuracy_drop"] if drop > select.max_accuracy_drop + 1e-12 else []
        return {"accuracy_drop": round(drop, 6)}, over, None


def fidelity_warnings(fidelity: dict, reference: str, tolerance: Fidelity) -> list[str]:
    notes = []
    if fidelity["top1"] < tolerance.min_agreement:
        notes.append(f"top-1 agreement with {reference!r} {fidelity['top1']:.4f} is below fidelity.min_agreement "
                     f"{tolerance.min_agreement}")
    if fidelity["cosine_min"] < tolerance.min_cosine:
        notes.append(f"worst cosine similarity of outputs with {reference!r} {fidelity['cosine_min']:.4f} is below "
                     f"fidelity.min_cosine {tolerance.min_cosine}")
    return notes


def accuracy_of(outputs: Any, data: Any, weights: dict) -> tuple[float | None, str | None]:
    """Test accuracy, or None with the reason it means nothing."""
    if weights["source"] == "untrained":
        return None, "untrained"
    if not data.labelled:
        return None, f"dataset {data.name!r} has no labels"
    from suite.measure import quality

    return quality.accuracy(outputs, data.test.y), None


def accuracy_drop(v: VariantResult, reference: VariantResult | None) -> tuple[float | None, str | None]:
    if v.accuracy is None:
        return None, f"no accuracy ({v.accuracy_reason})"
    if reference is None or reference.accuracy is None:
        return None, f"reference variant {v.agreement_with!r} has no accuracy"
    return reference.accuracy - v.accuracy, None


CLASSIFY = ClassifyTask()
