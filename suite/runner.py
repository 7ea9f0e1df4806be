"""The only orchestrator: expands a scenario into variants and measures each.

A variant that fails is recorded with its error and the run goes on; results.json is
rewritten (atomically) after every variant, so nothing measured is lost.
"""

from __future__ import annotations

import copy
import json
import re
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from suite import __version__
from suite.compress import CompressContext, compress
from suite.errors import SuiteError, first_line
from suite.measure import footprint, quality, stats, timing
from suite.progress import Bars
from suite.registry import BACKENDS, DATASETS, METHODS, MODELS, UnknownName, did_you_mean
from suite.results import LatencyResult, RunResult, ThroughputResult, VariantResult, save_csv, save_json, shape_label
from suite.scenario import Measure, PluginRef, Scenario, Variant, format_conflict
from suite.select import recommend
from suite.training import TrainConfig, train
from suite.weights import CheckpointCache, code_fingerprint, default_cache_dir, obtain

# --quick: enough to prove the pipeline works end to end, not to benchmark anything.
QUICK_MAX_EPOCHS = 2
QUICK_MAX_BATCHES = 10  # per epoch
QUICK_PLAN = {"warmup_s": 0.02, "warmup_calls": 1, "min_samples": 10, "max_samples": 50, "min_time_s": 0.0, "max_time_s": 0.3}


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("reports")
    quick: bool = False
    only: tuple[str, ...] = ()
    cache_dir: Path | None = None
    backend: str | None = None  # run every variant on this backend (default params) instead of its own


def run(scenario: Scenario, options: RunOptions, bars: Bars) -> tuple[RunResult, Path]:
    """Measure every selected variant; write results.json, results.csv and index.html."""
    import torch

    from suite.environment import fingerprint
    from suite.report import write_html

    variants, duplicates = with_backend(select_variants(scenario, options.only), options.backend)
    run_dir = new_run_dir(options.out_dir, scenario.name)
    result = RunResult(suite_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       scenario=scenario.model_dump(mode="json"), environment=fingerprint(),
                       variants=(), quick=options.quick)
    bench = Workbench(scenario, options, bars, default_threads=torch.get_num_threads(), duplicates=duplicates)
    with bars.task("variants", total=len(variants)) as task:
        for done, variant in enumerate(variants):
            task.update(done, note=variant.name)
            variants = result.variants + (bench.run_variant(variant),)
            result = replace(result, variants=variants, selection=scenario.select and recommend(scenario.select, variants))
            save_json(result, run_dir / "results.json")
    save_csv(result, run_dir / "results.csv")
    write_html(result, run_dir / "index.html")
    return result, run_dir


def select_variants(scenario: Scenario, only: tuple[str, ...]) -> list[Variant]:
    """The variants to run, in order, with each agreement reference moved before its users."""
    names = [v.name for v in scenario.variants]
    for name in only:
        if name not in names:
            raise SuiteError(f"{scenario.source}: --only: unknown variant {name!r}{did_you_mean(name, names)}")
    chosen = [v for v in scenario.variants if not only or v.name in only]
    first = [v for v in chosen if v.name == scenario.baseline]
    return first + [v for v in chosen if v.name != scenario.baseline]


def with_backend(variants: list[Variant], name: str | None) -> tuple[list[Variant], dict[str, str]]:
    """The variants moved to backend `name` with its default params (`suite run --backend`), and
    those that became identical to an earlier one (name -> earlier name): they are not run twice."""
    if name is None:
        return variants, {}
    try:
        BACKENDS.check(name)
    except UnknownName as exc:
        raise SuiteError(f"--backend: {exc}") from None
    backend = PluginRef(name, BACKENDS.get(name).Params())
    moved = [v.model_copy(update={"backend": backend}) for v in variants]
    first: dict[str, str] = {}  # a variant's settings, name aside -> the first variant with them
    same: dict[str, str] = {}
    for v in moved:
        key = json.dumps(v.model_dump(mode="json", exclude={"name"}), sort_keys=True)
        if key in first:
            same[v.name] = first[key]
        else:
            first[key] = v.name
    return moved, same


def new_run_dir(out_dir: Path, scenario_name: str) -> Path:
    """reports/<scenario-name>/<UTC timestamp>/, made unique if two runs start in one second."""
    slug = re.sub(r"[^\w.-]+", "-", scenario_name).strip("-.") or "scenario"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        folder = Path(out_dir) / slug / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise SuiteError(f"{out_dir}: cannot make a new run folder for {scenario_name!r}")


class Workbench:
    """Runs variants one by one, sharing datasets, trained models and predictions between them."""

    def __init__(self, scenario: Scenario, options: RunOptions, bars: Bars, default_threads: int,
                 duplicates: dict[str, str] | None = None):
        self.scenario, self.options, self.bars = scenario, options, bars
        self.duplicates = duplicates or {}
        self.default_threads = default_threads
        self.cache = CheckpointCache(options.cache_dir or default_cache_dir())
        self._datasets: dict[str, Any] = {}
        self._models: dict[str, tuple[Any, dict]] = {}
        self._outputs: dict[str, Any] = {}  # each variant's test-set outputs, for agreement

    def run_variant(self, variant: Variant) -> VariantResult:
        model_ref = self.scenario.model_of(variant)
        backend = BACKENDS.get(variant.backend.name)(variant.backend.params)
        base = VariantResult(name=variant.name, model=model_ref.name, backend=variant.backend.name,
                             compress=tuple(step.dump("method") for step in variant.compress))
        reason = self.moved_away(variant) or backend.available() or methods_unavailable(variant, backend.describe().get("device", "cpu"))
        if reason:
            self.bars.log(f"{variant.name}: skipped: {reason}")
            return replace(base, status="skipped", error=reason)
        start = time.perf_counter()
        try:
            result = self._measure(variant, model_ref, backend, base)
        except SuiteError as exc:
            result = self._failed(base, exc, str(exc))
        except Exception as exc:  # a bug or a backend crash: record it, keep the traceback, go on
            self.bars.log(traceback.format_exc())
            result = self._failed(base, exc, f"{type(exc).__name__}: {first_line(exc)}")
        return replace(result, seconds=round(time.perf_counter() - start, 3))

    def moved_away(self, variant: Variant) -> str | None:
        """Why a variant that --backend moved is not run: it cannot run there, or repeats another."""
        conflict = format_conflict(variant)
        if conflict:
            return conflict[1]
        if variant.name in self.duplicates:
            return f"with --backend {variant.backend.name} it is the same as variant {self.duplicates[variant.name]!r}"
        return None

    def _failed(self, base: VariantResult, exc: Exception, message: str) -> VariantResult:
        self.bars.log(f"{base.name}: failed: {message}")
        return replace(base, status="failed", error=message, error_type=type(exc).__name__)

    def _measure(self, variant: Variant, model_ref: PluginRef, backend: Any, base: VariantResult) -> VariantResult:
        import torch

        measure = self.scenario.measure_of(variant)
        torch.set_num_threads(measure.threads or self.default_threads)
        data = self.dataset(variant, model_ref)
        model, weights = self.trained_model(model_ref, data)
        model, records = self.compressed(variant, model_ref, model, data, backend)
        size, params = footprint.serialized_size_bytes(model), footprint.parameter_count(model)
        run_model = backend.prepare(model, data.test.x[:1], data.train.x)
        outputs = quality.outputs(run_model, backend.place, backend.to_host, data.test.x, measure.eval_batch_size)
        self._outputs[variant.name] = outputs
        reference, fidelity, notes = self.agreement(variant, model_ref, outputs)
        latency, throughput, timing_notes = self.latency(variant, run_model, backend, data, measure)
        accuracy, accuracy_reason = accuracy_of(outputs, data, weights)
        return replace(
            base, accuracy=accuracy, accuracy_reason=accuracy_reason, agreement=fidelity.pop("top1", None),
            fidelity=fidelity or None, agreement_with=reference, size_bytes=size, params=params,
            peak_rss_bytes=footprint.peak_rss_bytes(), latency=latency, throughput=throughput,
            warnings=tuple(notes + timing_notes), dataset=data.describe(),
            backend_info={"version": backend.version(), "threads": torch.get_num_threads(), **backend.describe()},
            weights=weights, compress_records=tuple(records))

    def compressed(self, variant: Variant, model_ref: PluginRef, model: Any, data: Any, backend: Any) -> tuple[Any, tuple]:
        """The model after the variant's compression steps, in order, with a record of each."""
        records = []
        for step in variant.compress:
            with self.bars.task(f"{variant.name}: {step.name}", total=None) as task:
                model, record = compress(model, step, self.compress_context(model_ref, data, backend, task))
            records.append(record)
            self.bars.log(f"{variant.name}: {describe_step(record)}")
        return model, tuple(records)

    def compress_context(self, model_ref: PluginRef, data: Any, backend: Any, task: Any) -> CompressContext:
        def on_epoch(epoch: int, epochs: int, loss: float, val_accuracy: float) -> None:
            task.update(epoch, note=f"fine-tuning: loss {loss:.3f}  val acc {val_accuracy:.3f}", total=epochs)

        quick = self.options.quick
        return CompressContext(data=data, seed=self.scenario.seed, train_recipe=MODELS.get(model_ref.name).train or {},
                               max_epochs=QUICK_MAX_EPOCHS if quick else None,
                               max_batches=QUICK_MAX_BATCHES if quick else None,
                               device=backend.describe().get("device", "cpu"), on_epoch=on_epoch)

    def dataset(self, variant: Variant, model_ref: PluginRef) -> Any:
        ref = variant.dataset or self.scenario.dataset or default_dataset(model_ref.name)
        key = json.dumps(ref.dump(), sort_keys=True)
        if key not in self._datasets:
            self._datasets[key] = DATASETS.get(ref.name).load(ref.params)
        return self._datasets[key]

    def trained_model(self, model_ref: PluginRef, data: Any) -> tuple[Any, dict]:
        """A fresh copy of the model with its weights (trained, cached or the user's checkpoint)."""
        key = json.dumps([model_ref.dump(), data.describe()], sort_keys=True)
        if key not in self._models:
            self._models[key] = self._build_and_fill(model_ref, data)
        model, weights = self._models[key]
        return copy.deepcopy(model), weights

    def _build_and_fill(self, model_ref: PluginRef, data: Any) -> tuple[Any, dict]:
        import torch

        spec = MODELS.get(model_ref.name)
        torch.manual_seed(self.scenario.seed)
        model = spec.build(model_ref.params, data)
        if model_ref.checkpoint is None and spec.provides_weights:
            return model, {"source": "provided", "by": model_ref.dump()}
        if model_ref.checkpoint is None and (spec.train is None or not data.labelled):
            return model, self._untrained(model_ref.name, spec, data)
        config = train_config(spec.train, self.scenario, self.options.quick)
        key_parts = {"model": model_ref.dump(), "dataset": data.describe(), "train": config.__dict__,
                     "seed": self.scenario.seed, "torch": torch.__version__.split("+")[0],
                     "code": code_fingerprint(model)}
        weights = obtain(model, model_ref.name, model_ref.checkpoint, key_parts, self.cache,
                         lambda: self._train(model, model_ref.name, data, config))
        self.bars.log(describe_weights(model_ref.name, weights))
        return model, weights

    def _untrained(self, name: str, spec: Any, data: Any) -> dict:
        if spec.train is not None:
            raise SuiteError(f"{self.scenario.source}: model {name!r} needs training, but dataset {data.name!r} "
                             "has no labels: give the model a checkpoint or a labelled dataset")
        self.bars.log(f"{name}: random weights (seed {self.scenario.seed}), untrained: latency and agreement only")
        return {"source": "untrained", "init_seed": self.scenario.seed}

    def _train(self, model: Any, name: str, data: Any, config: TrainConfig) -> dict:
        with self.bars.task(f"training {name}", total=config.epochs) as task:
            def on_epoch(epoch: int, epochs: int, loss: float, val_accuracy: float) -> None:
                task.update(epoch, note=f"loss {loss:.3f}  val acc {val_accuracy:.3f}")

            return train(model, data, config, self.scenario.seed, on_epoch)

    def agreement(self, variant: Variant, model_ref: PluginRef, outputs: Any) -> tuple[str | None, dict, list[str]]:
        """The reference variant, how closely `outputs` follow its outputs, and warnings."""
        reference = agreement_reference(self.scenario, variant, model_ref)
        if reference not in self._outputs:
            return reference, {}, [f"agreement not measured: reference variant {reference!r} did not run or failed"]
        if self._outputs[reference].shape != outputs.shape:
            return reference, {}, [f"agreement not measured: outputs of shape {outputs.shape} against "
                                   f"{self._outputs[reference].shape} from {reference!r}"]
        fidelity = quality.agreement(outputs, self._outputs[reference])
        return reference, fidelity, fidelity_warnings(fidelity, reference, self.scenario.fidelity)

    def latency(self, variant: Variant, run_model: Any, backend: Any, data: Any, measure: Measure) -> tuple[tuple, tuple, list[str]]:
        latencies, throughputs, notes = [], [], []
        plan = timing_plan(measure, self.options.quick)
        on_device = backend.describe().get("device", "cpu") != "cpu"
        for batch_size, seq_len in input_shapes(measure, data, self.scenario.source):
            host_inputs = batch_of(data.test.x, batch_size, seq_len)
            inputs = backend.place(host_inputs)
            label = shape_label(batch_size, seq_len)
            with self.bars.task(f"measuring {variant.name} {label}", total=plan.min_samples) as task:
                measured = timing.measure(lambda: run_model(inputs), backend.synchronize, plan,
                                          clock=timing.CudaEventClock() if on_device else time.perf_counter,
                                          on_sample=lambda n: task.update(n))
            row, row_notes = latency_result(batch_size, seq_len, measured)
            if on_device:  # the same model again, timed from host inputs to host outputs, copies included
                with self.bars.task(f"measuring {variant.name} {label} end to end", total=plan.min_samples) as task:
                    copied = timing.measure(lambda: backend.to_host(run_model(backend.place(host_inputs))),
                                            backend.synchronize, plan, on_sample=lambda n: task.update(n))
                row = replace(row, timer="cuda_events", end_to_end=end_to_end(copied))
            latencies.append(row)
            throughputs.append(ThroughputResult(batch_size, batch_size / (row.p50_ms / 1e3), seq_len))
            notes += row_notes
        return tuple(latencies), tuple(throughputs), notes


def fidelity_warnings(fidelity: dict, reference: str, tolerance: Any) -> list[str]:
    notes = []
    if fidelity["top1"] < tolerance.min_agreement:
        notes.append(f"top-1 agreement with {reference!r} {fidelity['top1']:.4f} is below fidelity.min_agreement "
                     f"{tolerance.min_agreement}")
    if fidelity["cosine_min"] < tolerance.min_cosine:
        notes.append(f"worst cosine similarity of outputs with {reference!r} {fidelity['cosine_min']:.4f} is below "
                     f"fidelity.min_cosine {tolerance.min_cosine}")
    return notes


def input_shapes(measure: Measure, data: Any, source: str) -> list[tuple[int, int | None]]:
    """(batch size, sequence length) pairs to time; the length is None unless `seq_lens` is set."""
    if measure.seq_lens is None:
        return [(b, None) for b in measure.batch_sizes]
    if data.vocab_size is None:
        raise SuiteError(f"{source}: measure.seq_lens: dataset {data.name!r} is not token sequences")
    return [(b, s) for s in measure.seq_lens for b in measure.batch_sizes]


def latency_result(batch_size: int, seq_len: int | None, measured: timing.Timing) -> tuple[LatencyResult, list[str]]:
    samples_ms = tuple(s * 1e3 for s in measured.samples_s)
    summary = stats.summarize(samples_ms)
    label = shape_label(batch_size, seq_len)
    notes = [f"{label}: {w}" for w in stats.sample_warnings(summary)]
    if measured.stopped_by == "max_time_s":
        notes.append(f"{label}: max_time_s reached after only {summary.n} samples (fewer than min_samples)")
    if measured.loops > 1:
        notes.append(f"{label}: calls shorter than the timer allows; each sample is the mean of "
                     f"{measured.loops} calls, so percentiles are of those means")
    row = LatencyResult(batch_size=batch_size, seq_len=seq_len, samples_ms=samples_ms, loops=measured.loops,
                        warmup_calls=measured.warmup_calls, stopped_by=measured.stopped_by,
                        **summary.__dict__)
    return row, notes


def end_to_end(measured: timing.Timing) -> dict:
    """The host-to-host figures: the percentiles of samples that include host-device copies."""
    summary = stats.summarize([t * 1e3 for t in measured.samples_s])
    return {"timer": "perf_counter", "n": summary.n, "p50_ms": summary.p50_ms, "p90_ms": summary.p90_ms,
            "p99_ms": summary.p99_ms, "mean_ms": summary.mean_ms}


def methods_unavailable(variant: Variant, device: str) -> str | None:
    """Why one of the variant's compression steps cannot run on `device`, or None."""
    for step in variant.compress:
        reason = METHODS.get(step.name).unavailable(device)
        if reason:
            return f"{step.name}: {reason}"
    return None


def describe_step(record: dict) -> str:
    before, after = record["before"], record["after"]
    return (f"{record['method']}: size {before['size_bytes'] / 2**20:.2f} -> {after['size_bytes'] / 2**20:.2f} MiB, "
            f"weights {before['weights']:,} -> {after['weights']:,}, sparsity {after['sparsity']:.1%}")


def accuracy_of(outputs: Any, data: Any, weights: dict) -> tuple[float | None, str | None]:
    """Test accuracy, or None with the reason it means nothing."""
    if weights["source"] == "untrained":
        return None, "untrained"
    if not data.labelled:
        return None, f"dataset {data.name!r} has no labels"
    return quality.accuracy(outputs, data.test.y), None


def agreement_reference(scenario: Scenario, variant: Variant, model_ref: PluginRef) -> str:
    """The scenario's baseline if it runs the same model on the same data; else the first variant that does."""
    def same_setup(other: Variant) -> bool:
        return scenario.model_of(other) == model_ref and other.dataset == variant.dataset

    peers = [v.name for v in scenario.variants if same_setup(v)]
    return scenario.baseline if scenario.baseline in peers else peers[0]


def default_dataset(model_name: str) -> PluginRef:
    name = MODELS.get(model_name).dataset
    return PluginRef(name, DATASETS.get(name).Params())


def train_config(recipe: dict, scenario: Scenario, quick: bool) -> TrainConfig:
    config = TrainConfig(**{**recipe, **scenario.train.model_dump(exclude_none=True)})
    if quick:
        config = replace(config, epochs=min(config.epochs, QUICK_MAX_EPOCHS), max_batches=QUICK_MAX_BATCHES)
    return config


def timing_plan(m: Measure, quick: bool) -> timing.TimingPlan:
    plan = timing.TimingPlan(warmup_s=m.warmup_s, warmup_calls=m.warmup_calls, min_samples=m.min_samples, max_samples=m.max_samples,
                             min_time_s=m.min_time_s, max_time_s=m.max_time_s,
                             min_sample_s=m.min_sample_ms / 1e3 if m.min_sample_ms else None)
    return replace(plan, **QUICK_PLAN) if quick else plan


def batch_of(inputs: Any, batch_size: int, seq_len: int | None = None) -> Any:
    """The first `batch_size` inputs, repeated when the split is smaller than the batch;
    token sequences cut or padded (id 0, masked as padding) to `seq_len` when given."""
    import torch

    repeats = -(-batch_size // len(inputs))
    batch = torch.cat([inputs] * repeats)[:batch_size] if repeats > 1 else inputs[:batch_size]
    if seq_len is None:
        return batch
    batch = batch[:, :seq_len]
    return torch.nn.functional.pad(batch, (0, seq_len - batch.shape[1]), value=0)


def describe_weights(name: str, weights: dict) -> str:
    if weights["source"] == "checkpoint":
        return f"{name}: loaded checkpoint {weights['path']}"
    if weights["source"] == "untrained":
        return f"{name}: untrained, random weights"
    if weights["source"] == "provided":
        return f"{name}: weights as loaded from the model's own file or factory"
    record = weights["training"]
    summary = (f"{record['epochs_run']} epochs (best {record['best_epoch']}, "
               f"val accuracy {record['val_accuracy']:.4f})")
    if weights["source"] == "cache":
        return f"{name}: loaded cached checkpoint {weights['path']}, no training (trained {summary})"
    return f"{name}: trained {summary} in {record['seconds']:.1f} s; cached at {weights['path']}"
