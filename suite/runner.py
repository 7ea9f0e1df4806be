"""The only orchestrator: expands a scenario into variants and measures each.

A variant that fails is recorded with its error and the run goes on. Each variant runs in its
own process by default (suite.isolation); each finished variant is saved in the run folder at
once and results.json rewritten (atomically), so nothing measured is lost and an interrupted
run can be resumed (suite.run_folder).
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from suite import __version__
from suite.compress import CompressContext, compress
from suite.errors import RunInterrupted, SuiteError, first_line, one_line
from suite.isolation import run_isolated, start_fork_server, why_it_failed
from suite.measure import footprint, quality
from suite.measuring import Context, input_shapes, measure_model, shape_of
from suite.phases import Phases, with_start_up
from suite.progress import Bars
from suite.registry import BACKENDS, DATASETS, METHODS, MODELS, UnknownName, did_you_mean
from suite.run_folder import RunFolder, options_dict
from suite.results import RunResult, VariantResult, save_csv, save_json
from suite.scenario import PluginRef, Scenario, Variant, format_conflict, task_conflict
from suite.scenario import load as load_scenario
from suite.select import recommend
from suite.training import TrainConfig, train, train_lm
from suite.weights import CheckpointCache, code_fingerprint, default_cache_dir, obtain, use_cache_root

# --quick: enough to prove the pipeline works end to end, not to benchmark anything
# (the timing side of it: measuring.QUICK_PLAN).
QUICK_MAX_EPOCHS = 2
QUICK_MAX_BATCHES = 10  # per epoch


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("reports")
    quick: bool = False
    only: tuple[str, ...] = ()
    cache_dir: Path | None = None
    backend: str | None = None  # run every variant on this backend (default params) instead of its own
    in_process: bool = False  # every variant in this process, whatever the scenario's isolation says

    @classmethod
    def from_dict(cls, data: dict, where: str = "run.json") -> RunOptions:
        from suite.results import checked

        return checked(cls, data, f"{where}: options")


def run(scenario: Scenario, options: RunOptions, bars: Bars, folder: RunFolder | None = None) -> tuple[RunResult, Path]:
    """Measure every selected variant; write results.json, results.csv, index.html and summary.md.

    `folder`: an interrupted run to finish; its finished variants are kept, not measured again."""
    variants, duplicates = with_backend(select_variants(scenario, options.only), options.backend)
    if folder is None:
        folder = RunFolder(new_run_dir(options.out_dir, scenario.name))
        folder.start(Path(scenario.source), options_dict(options), sys.path)
    if scenario.isolation.subprocess and not options.in_process:  # its imports overlap with ours below
        start_fork_server(folder)
    import torch

    from suite.environment import fingerprint
    from suite.report import write_run_reports
    result = RunResult(suite_version=__version__, created=folder.started().created,
                       scenario=scenario.model_dump(mode="json"), environment=fingerprint(),
                       variants=(), quick=options.quick)
    bench = Workbench(scenario, options, bars, torch.get_num_threads(), folder, duplicates)
    try:
        with bars.task("variants", total=len(variants)) as task:
            for done, variant in enumerate(variants):
                task.update(done, note=variant.name)
                bars.progress(f"[{done + 1}/{len(variants)}] {variant.name}: started")
                finished = bench.result_of(variant)
                bars.progress(f"[{done + 1}/{len(variants)}] {ending_line(finished)}")
                variants_done = result.variants + (finished,)
                result = replace(result, variants=variants_done,
                                 selection=scenario.select and recommend(scenario.select, variants_done))
                save_json(result, folder.path / "results.json")
    except KeyboardInterrupt:
        raise RunInterrupted(folder.path, len(result.variants), len(variants)) from None
    save_csv(result, folder.path / "results.csv")
    write_run_reports(result, folder.path)
    return result, folder.path


def resume(run_dir: Path, bars: Bars) -> tuple[RunResult, Path]:
    """Finish an interrupted run in its own folder, with the options it was started with."""
    folder = RunFolder(run_dir)
    scenario, options = started_as(folder)
    for variant in scenario.variants:  # a damaged saved result is refused before anything runs
        folder.finished(variant.name)
    if options.in_process:
        use_sys_path(folder)
    return run(scenario, options, bars, folder)


def started_as(folder: RunFolder) -> tuple[Scenario, RunOptions]:
    """The scenario (its text as saved in the run folder) and options a run was started with."""
    started = folder.started()
    options = RunOptions.from_dict(started.options, str(folder.path / "run.json"))
    return load_scenario(folder.path / "scenario.yaml", origin=started.scenario_file), options


def use_sys_path(folder: RunFolder) -> None:
    """Find modules where the run's first process found them: the user's own model factories."""
    sys.path[:0] = [p for p in folder.started().sys_path if p not in sys.path]


def variant_in_folder(folder: RunFolder, name: str, bars: Any) -> VariantResult:
    """Measure one variant of the run in `folder` in this process (the isolated child's work)."""
    import torch

    use_sys_path(folder)
    scenario, options = started_as(folder)
    variants, duplicates = with_backend(select_variants(scenario, options.only), options.backend)
    [variant] = [v for v in variants if v.name == name]
    return Workbench(scenario, options, bars, torch.get_num_threads(), folder, duplicates).run_variant(variant)


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
    """Runs variants one by one: datasets and trained models are shared between the variants of one
    process, test-set outputs (for agreement) go through the run folder (None when the caller only
    wants variants `ready`, as the paired gate does)."""

    def __init__(self, scenario: Scenario, options: RunOptions, bars: Bars, default_threads: int,
                 folder: RunFolder | None, duplicates: dict[str, str] | None = None):
        self.scenario, self.options, self.bars, self.folder = scenario, options, bars, folder
        self.duplicates = duplicates or {}
        self.default_threads = default_threads
        cache_root = options.cache_dir or default_cache_dir()
        self.cache = CheckpointCache(cache_root)
        use_cache_root(cache_root)  # for the caches below the plugins (ONNX exports)
        self.phases = Phases()  # the current variant's
        self._datasets: dict[str, Any] = {}
        self._models: dict[str, tuple[Any, dict]] = {}

    def result_of(self, variant: Variant) -> VariantResult:
        """The variant's result: saved by an earlier attempt of this run, or measured now (in its
        own process unless the scenario or --in-process says otherwise), then saved at once."""
        finished = self.folder.finished(variant.name)
        if finished is not None:
            self.bars.log(f"{variant.name}: {finished.status} in an earlier attempt of this run: kept")
            return finished
        isolation, reason = self.scenario.isolation, self.skip_reason(variant)
        if reason:
            result = self.skipped(variant, reason)
        elif self.options.in_process or not isolation.subprocess:
            result = self.measured(variant)
        else:
            result = self.run_in_child(variant, isolation)
        self.folder.save_variant(result)
        return result

    def run_in_child(self, variant: Variant, isolation: Any) -> VariantResult:
        start = time.perf_counter()
        result, ending = run_isolated(self.folder, variant.name, isolation, self.bars)
        seconds = round(time.perf_counter() - start, 3)
        if result is None:
            error_type, reason = why_it_failed(ending)
            self.bars.log(f"{variant.name}: failed: {reason}")
            return replace(base_result(self.scenario, variant), status="failed", error=reason,
                           error_type=error_type, stderr_tail=ending["stderr_tail"], seconds=seconds)
        if ending["returncode"] != 0:  # it saved a result, then died on the way out
            result = replace(result, warnings=result.warnings + (f"process exited with status {ending['returncode']} "
                                                                 "after saving this result",))
        phases = {k: v for k, v in (result.phases or {}).items() if k != "start-up"}
        return replace(result, seconds=seconds, phases=with_start_up(phases, seconds))

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
        model_ref = self.scenario.model_of(variant)
        backend = BACKENDS.get(variant.backend.name)(variant.backend.params)
        base = base_result(self.scenario, variant)
        start = time.perf_counter()
        self.phases = Phases()
        try:
            result = self._measure(variant, model_ref, backend, base)
        except SuiteError as exc:
            result = self._failed(base, exc, one_line(str(exc)))
        except Exception as exc:  # a bug or a backend crash: record it, keep the traceback, go on
            self.bars.log(traceback.format_exc())
            result = self._failed(base, exc, f"{type(exc).__name__}: {first_line(exc)}")
        seconds = round(time.perf_counter() - start, 3)
        return replace(result, seconds=seconds, phases=with_start_up(self.phases.seconds, seconds))

    def moved_away(self, variant: Variant) -> str | None:
        """Why a variant that --backend moved is not run: it cannot run there, or repeats another."""
        conflict = format_conflict(variant) or task_conflict(
            variant, self.scenario.model_of(variant), variant.dataset or self.scenario.dataset,
            self.scenario.measure_of(variant))
        if conflict:
            return conflict[1]
        if variant.name in self.duplicates:
            return f"with --backend {variant.backend.name} it is the same as variant {self.duplicates[variant.name]!r}"
        return None

    def _failed(self, base: VariantResult, exc: Exception, message: str) -> VariantResult:
        self.bars.log(f"{base.name}: failed: {message}")
        return replace(base, status="failed", error=message, error_type=type(exc).__name__)

    def ready(self, variant: Variant) -> Ready:
        """The variant built, compressed and prepared on its backend, to be timed by the caller
        (the paired gate); nothing is measured or saved."""
        backend = BACKENDS.get(variant.backend.name)(variant.backend.params)
        model_ref = self.scenario.model_of(variant)
        measure, data, model, _, _ = self._built(variant, model_ref, backend)
        threads = measure.threads or self.default_threads
        if MODELS.get(model_ref.name).task == "generate":
            from suite import generating

            gen = generating.settings(measure.generate, self.options.quick)
            decoder = backend.prepare_decoder(model, gen.cache, data.tokenizer)
            generating.check_lengths(decoder, gen, self.scenario.source)
            batches = generating.batch_sizes_run(decoder, measure.batch_sizes)
            return Ready(decoder, backend, data, threads, [(b, p) for p in gen.prompt_lens for b in batches],
                         new_tokens=gen.new_tokens)
        run_model = backend.prepare(model, data.test.x[:1], data.train.x)
        return Ready(run_model, backend, data, threads, input_shapes(measure, data, self.scenario.source))

    def _built(self, variant: Variant, model_ref: PluginRef, backend: Any) -> tuple[Any, Any, Any, dict, tuple]:
        """(measure settings, dataset, model after compression, weights record, compression records)."""
        import torch

        measure = self.scenario.measure_of(variant)
        torch.set_num_threads(measure.threads or self.default_threads)
        with self.phases("data"):
            data = self.dataset(variant, model_ref)
        with self.phases("weights"):
            model, weights = self.trained_model(model_ref, data)
        model, records = self.compressed(variant, model_ref, model, data, backend)
        return measure, data, model, weights, records

    def _measure(self, variant: Variant, model_ref: PluginRef, backend: Any, base: VariantResult) -> VariantResult:
        import torch

        measure, data, model, weights, records = self._built(variant, model_ref, backend)
        if MODELS.get(model_ref.name).task == "generate":
            return self._measure_decoder(variant, model_ref, backend, base, (measure, data, model, weights, records))
        device = backend.describe().get("device", "cpu")
        footprint.reset_gpu_peak(device)
        size, params = footprint.serialized_size_bytes(model), footprint.parameter_count(model)
        with self.phases("prepare"):
            run_model = backend.prepare(model, data.test.x[:1], data.train.x)
        with self.phases("accuracy"):
            outputs = quality.outputs(run_model, backend.place, backend.to_host, data.test.x,
                                      measure.eval_batch_size or max(measure.batch_sizes))
        with self.phases("agreement"):
            self.folder.save_outputs(variant.name, outputs)
            reference, fidelity, notes = self.agreement(variant, model_ref, outputs)
        timed = measure_model(run_model, backend, data, measure, Context(
            self.options.quick, self.bars, variant.name, self.scenario.source, self.scenario.seed, self.phases))
        accuracy, accuracy_reason = accuracy_of(outputs, data, weights)
        return replace(
            base, accuracy=accuracy, accuracy_reason=accuracy_reason, agreement=fidelity.pop("top1", None),
            fidelity=fidelity or None, agreement_with=reference, size_bytes=size, params=params,
            peak_rss_bytes=footprint.peak_rss_bytes(), gpu_memory=footprint.gpu_peak_memory(device),
            **timed.fields(), warnings=tuple(notes) + timed.notes, dataset=data.describe(),
            backend_info={"version": backend.version(), "threads": torch.get_num_threads(), **backend.describe()},
            weights=weights, compress_records=tuple(records))

    def _measure_decoder(self, variant: Variant, model_ref: PluginRef, backend: Any, base: VariantResult,
                         built: tuple) -> VariantResult:
        """A generative decoder: perplexity, greedy fidelity, texts, then requests timed token by token."""
        import torch

        from suite import generating
        from suite.measure import machine

        measure, data, model, weights, records = built
        gen = generating.settings(measure.generate, self.options.quick)
        device = backend.describe().get("device", "cpu")
        footprint.reset_gpu_peak(device)
        params = footprint.parameter_count(model)
        with self.phases("prepare"):
            decoder = backend.prepare_decoder(model, gen.cache, data.tokenizer)
            generating.check_lengths(decoder, gen, self.scenario.source)
        # A backend that runs the model's own file reads that file's bytes, not the float model's.
        size = getattr(decoder, "file_bytes", None) or footprint.serialized_size_bytes(model)
        with self.phases("perplexity"):
            ppl = generating.perplexity(decoder, data, gen, measure.eval_batch_size or max(measure.batch_sizes))
        with self.phases("agreement"):
            tokens = generating.greedy_tokens(decoder, data, gen)
            self.folder.save_outputs(variant.name, tokens)
            reference, fidelity, notes = self.greedy_agreement(variant, model_ref, tokens, ppl["perplexity"])
        with self.phases("texts"):
            written = generating.texts(decoder, data, gen)
        limits = self.folder.limits(lambda: machine.limits(device))
        ctx = Context(self.options.quick, self.bars, variant.name, self.scenario.source, self.scenario.seed, self.phases)
        multiplied = generating.matmul_weights(self.uncompressed(model_ref, data))
        read = getattr(decoder, "weights_read_bytes", None) or generating.weights_read_bytes(model, size)
        timed, extra = generating.measure_generation(decoder, backend, data, measure, gen, ctx, read, multiplied,
                                                     limits)
        result = generating.with_quality(base, timed, extra, ppl, fidelity, reference, written, gen,
                                         measure.batch_sizes, notes)
        return replace(result, size_bytes=size, params=params, peak_rss_bytes=footprint.peak_rss_bytes(),
                       gpu_memory=footprint.gpu_peak_memory(device), dataset=data.describe(),
                       backend_info={"version": backend.version(), "threads": torch.get_num_threads(),
                                     **backend.describe()},
                       weights=weights, compress_records=tuple(records))

    def greedy_agreement(self, variant: Variant, model_ref: PluginRef, tokens: Any,
                         ppl: float) -> tuple[str, dict | None, list[str]]:
        from suite import generating
        from suite.lm import greedy_fidelity

        reference = agreement_reference(self.scenario, variant, model_ref)
        expected = self.folder.outputs(reference)
        if expected is None or expected.shape != tokens.shape:
            why = "did not run or failed" if expected is None else f"made tokens of shape {expected.shape}"
            return reference, None, [f"greedy agreement not measured: reference variant {reference!r} {why}"]
        fidelity = greedy_fidelity(tokens, expected)
        saved = self.folder.finished(reference) if reference != variant.name else None
        reference_ppl = saved.perplexity if saved else ppl
        fidelity["perplexity_increase"] = ppl / reference_ppl - 1 if reference_ppl else None
        return reference, fidelity, generating.fidelity_warnings(fidelity, reference, ppl, reference_ppl,
                                                                 self.scenario.fidelity)

    def compressed(self, variant: Variant, model_ref: PluginRef, model: Any, data: Any, backend: Any) -> tuple[Any, tuple]:
        """The model after the variant's compression steps, in order, with a record of each."""
        records = []
        for step in variant.compress:
            with self.bars.task(f"{variant.name}: {step.name}", total=None) as task, self.phases(f"compress: {step.name}"):
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
                               device=backend.describe().get("device", "cpu"), on_epoch=on_epoch,
                               task=MODELS.get(model_ref.name).task)

    def dataset(self, variant: Variant, model_ref: PluginRef) -> Any:
        ref = variant.dataset or self.scenario.dataset or default_dataset(model_ref.name)
        key = json.dumps(ref.dump(), sort_keys=True)
        if key not in self._datasets:
            self._datasets[key] = DATASETS.get(ref.name).load(ref.params)
        spec = MODELS.get(model_ref.name)
        if spec.tokenizer is None:
            return self._datasets[key]
        tokens_key = json.dumps([ref.dump(), model_ref.dump()], sort_keys=True)  # text in the model's own tokens
        if tokens_key not in self._datasets:
            from suite.lm import tokenized

            tokenizer, label = spec.tokenizer(model_ref.params, self._datasets[key])
            self._datasets[tokens_key] = tokenized(self._datasets[key], tokenizer, label)
        return self._datasets[tokens_key]

    def trained_model(self, model_ref: PluginRef, data: Any) -> tuple[Any, dict]:
        """A fresh copy of the model with its weights (trained, cached or the user's checkpoint)."""
        key = json.dumps([model_ref.dump(), data.describe()], sort_keys=True)
        if key not in self._models:
            self._models[key] = self._build_and_fill(model_ref, data)
        model, weights = self._models[key]
        return copy.deepcopy(model), weights

    def uncompressed(self, model_ref: PluginRef, data: Any) -> Any:
        """The model as built and filled, before any compression (shared: do not change it)."""
        self.trained_model(model_ref, data)
        return self._models[json.dumps([model_ref.dump(), data.describe()], sort_keys=True)][0]

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
                         lambda: self._train(model, model_ref.name, data, config, spec.task))
        self.bars.log(describe_weights(model_ref.name, weights))
        return model, weights

    def _untrained(self, name: str, spec: Any, data: Any) -> dict:
        if spec.train is not None:
            raise SuiteError(f"{self.scenario.source}: model {name!r} needs training, but dataset {data.name!r} "
                             "has no labels: give the model a checkpoint or a labelled dataset")
        self.bars.log(f"{name}: random weights (seed {self.scenario.seed}), untrained: latency and agreement only")
        return {"source": "untrained", "init_seed": self.scenario.seed}

    def _train(self, model: Any, name: str, data: Any, config: TrainConfig, task_kind: str) -> dict:
        trainer, judged = (train_lm, "val perplexity") if task_kind == "generate" else (train, "val acc")
        with self.bars.task(f"training {name}", total=config.epochs) as task:
            def on_epoch(epoch: int, epochs: int, loss: float, score: float) -> None:
                task.update(epoch, note=f"loss {loss:.3f}  {judged} {score:.3f}")

            return trainer(model, data, config, self.scenario.seed, on_epoch)

    def agreement(self, variant: Variant, model_ref: PluginRef, outputs: Any) -> tuple[str | None, dict, list[str]]:
        """The reference variant, how closely `outputs` follow its outputs, and warnings."""
        reference = agreement_reference(self.scenario, variant, model_ref)
        expected = self.folder.outputs(reference)
        if expected is None:
            return reference, {}, [f"agreement not measured: reference variant {reference!r} did not run or failed"]
        if expected.shape != outputs.shape:
            return reference, {}, [f"agreement not measured: outputs of shape {outputs.shape} against "
                                   f"{expected.shape} from {reference!r}"]
        fidelity = quality.agreement(outputs, expected)
        return reference, fidelity, fidelity_warnings(fidelity, reference, self.scenario.fidelity)

@dataclass(frozen=True)
class Ready:
    """A prepared variant: what the paired gate times in alternating rounds. For a generative
    decoder, `run_model` is its suite.lm.Decoder and each shape is (batch size, prompt length)."""

    run_model: Any
    backend: Any
    data: Any
    threads: int
    shapes: list[tuple[int, int | None]]  # (batch size, sequence length) its scenario times it at
    new_tokens: int | None = None  # a decoder's new tokens per request; None: not a decoder

    def call(self, batch_size: int, seq_len: int | None) -> Any:
        return shape_of(self.run_model, self.backend, self.data, batch_size, seq_len).call

    def request(self, batch_size: int, prompt_len: int) -> Any:
        """A decoder's greedy request: the call returns (prefill seconds, seconds of each later step)."""
        from suite.measure.decoding import one_request

        prompt = self.backend.place(self.data.windows("test", prompt_len, batch_size))
        return lambda: one_request(self.run_model, prompt, self.new_tokens, self.sync, time.perf_counter)

    def sync(self) -> None:
        self.backend.synchronize()

    def use_threads(self) -> None:
        import torch

        torch.set_num_threads(self.threads)


def base_result(scenario: Scenario, variant: Variant) -> VariantResult:
    """What a variant's result says before anything is measured: which variant it is."""
    return VariantResult(name=variant.name, model=scenario.model_of(variant).name, backend=variant.backend.name,
                         compress=tuple(step.dump("method") for step in variant.compress))


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


def fidelity_warnings(fidelity: dict, reference: str, tolerance: Any) -> list[str]:
    notes = []
    if fidelity["top1"] < tolerance.min_agreement:
        notes.append(f"top-1 agreement with {reference!r} {fidelity['top1']:.4f} is below fidelity.min_agreement "
                     f"{tolerance.min_agreement}")
    if fidelity["cosine_min"] < tolerance.min_cosine:
        notes.append(f"worst cosine similarity of outputs with {reference!r} {fidelity['cosine_min']:.4f} is below "
                     f"fidelity.min_cosine {tolerance.min_cosine}")
    return notes


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


def describe_weights(name: str, weights: dict) -> str:
    if weights["source"] == "checkpoint":
        return f"{name}: loaded checkpoint {weights['path']}"
    if weights["source"] == "untrained":
        return f"{name}: untrained, random weights"
    if weights["source"] == "provided":
        return f"{name}: weights as loaded from the model's own file or factory"
    record = weights["training"]
    judged = (f"val perplexity {record['val_perplexity']:.3f}" if "val_perplexity" in record
              else f"val accuracy {record['val_accuracy']:.4f}")
    summary = f"{record['epochs_run']} epochs (best {record['best_epoch']}, {judged})"
    if weights["source"] == "cache":
        return f"{name}: loaded cached checkpoint {weights['path']}, no training (trained {summary})"
    return f"{name}: trained {summary} in {record['seconds']:.1f} s; cached at {weights['path']}"
