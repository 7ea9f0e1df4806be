"""One variant measured in this process: built (suite.building), then its quality (accuracy and
agreement, or perplexity and greedy fidelity) and its speed, into a VariantResult. A failure is
recorded in the result, never raised. Where the variant runs is the launcher's business
(suite.launchers); the isolated child's entry point is `variant_in_folder` here.
"""

from __future__ import annotations

import errno
import time
import traceback
from dataclasses import replace
from typing import Any

from suite.building import Builder, Built
from suite.errors import SuiteError, first_line, one_line
from suite.measure import footprint, quality
from suite.measuring import Context, measure_model, outputs_on
from suite.phases import Phases, with_start_up
from suite.profiling import flops_model, profile_decoder, profile_variant, run_limits
from suite.progress import Bars
from suite.registry import BACKENDS, METHODS
from suite.results import VariantResult
from suite.run_folder import RunFolder
from suite.scenario import PluginRef, Scenario, Variant, format_conflict, task_conflict
from suite.search import search_variant, search_warnings


class Bench:
    """Measures variants one by one in this process; test-set outputs (for agreement) go through
    the run folder."""

    def __init__(self, scenario: Scenario, options: Any, bars: Bars, default_threads: int, folder: RunFolder,
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
            result = self._measure(base, self.builder.build(variant))
            if searched is not None:
                result = replace(result, warnings=result.warnings + tuple(search_warnings(searched)))
        except SuiteError as exc:
            result = self._failed(base, exc, one_line(str(exc)))
        except Exception as exc:  # a bug or a backend crash: record it, keep the traceback, go on
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the run stops (suite.runner)
                raise
            self.bars.log(traceback.format_exc())
            result = self._failed(base, exc, f"{type(exc).__name__}: {first_line(exc)}")
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
        if getattr(exc, "details", None):  # the backend's whole message: in the variant's log, not on screen
            try:
                with open(self.folder.log_file(base.name), "a", encoding="utf-8") as log:
                    log.write(f"{base.name}: what was said in full: {exc.details}\n")
            except OSError:  # a full disk: the one line above is all there is
                pass
        return replace(base, status="failed", error=message, error_type=type(exc).__name__)

    def _measure(self, base: VariantResult, built: Built) -> VariantResult:
        import torch

        if built.generate is not None:
            return self._measure_decoder(base, built)
        variant, model_ref, backend, measure, data, model = (built.variant, built.model_ref, built.backend,
                                                             built.measure, built.data, built.model)
        device = backend.describe().get("device", "cpu")
        footprint.reset_gpu_peak(device)
        size, params = footprint.serialized_size_bytes(model), footprint.parameter_count(model)
        run_model = self.builder.prepare(built)
        with self.phases("accuracy"):
            outputs = outputs_on(run_model, backend, data.test.x, measure)
        with self.phases("agreement"):
            self.folder.save_outputs(variant.name, outputs)
            reference, fidelity, notes = self.agreement(variant, model_ref, outputs)
        timed = measure_model(run_model, backend, data, measure, Context(
            self.bars, variant.name, self.scenario.source, self.scenario.seed, self.phases))
        profiled = None
        if measure.profile:
            with self.phases("profile"), self.bars.task(f"{variant.name}: where the time goes", total=None):
                counted = flops_model(model, self.builder.uncompressed(model_ref, data), len(variant.compress))
                profiled = profile_variant(run_model, backend, variant.backend.name, data, timed.latency, size,
                                           counted, run_limits(self.folder, device))
        accuracy, accuracy_reason = accuracy_of(outputs, data, built.weights)
        return replace(
            base, profile=profiled, accuracy=accuracy, accuracy_reason=accuracy_reason, agreement=fidelity.pop("top1", None),
            fidelity=fidelity or None, agreement_with=reference, size_bytes=size, params=params,
            peak_rss_bytes=footprint.peak_rss_bytes(), gpu_memory=footprint.gpu_peak_memory(device),
            **timed.fields(), warnings=tuple(notes) + timed.notes, dataset=data.describe(),
            backend_info={"version": backend.version(), "threads": torch.get_num_threads(), **backend.describe()},
            weights=built.weights, compress_records=tuple(built.records))

    def _measure_decoder(self, base: VariantResult, built: Built) -> VariantResult:
        """A generative decoder: perplexity, greedy fidelity, texts, then requests timed token by token."""
        import torch

        from suite import generating

        variant, model_ref, backend, measure, data, model, gen = (
            built.variant, built.model_ref, built.backend, built.measure, built.data, built.model, built.generate)
        device = backend.describe().get("device", "cpu")
        footprint.reset_gpu_peak(device)
        params = footprint.parameter_count(model)
        decoder = self.builder.prepare(built)
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
        limits = run_limits(self.folder, device)
        ctx = Context(self.bars, variant.name, self.scenario.source, self.scenario.seed, self.phases)
        multiplied = generating.matmul_weights(self.builder.uncompressed(model_ref, data))
        read = getattr(decoder, "weights_read_bytes", None) or generating.weights_read_bytes(model, size)
        timed, extra = generating.measure_generation(decoder, backend, data, measure, gen, ctx, read, multiplied,
                                                     limits)
        profiled = None
        if measure.profile:
            with self.phases("profile"), self.bars.task(f"{variant.name}: where the time goes", total=None):
                profiled = profile_decoder(decoder, backend, variant.backend.name, data, gen.new_tokens,
                                           timed.latency, read, multiplied, limits)
        result = generating.with_quality(base, timed, extra, ppl, fidelity, reference, written, gen,
                                         measure.batch_sizes, notes)
        return replace(result, profile=profiled, size_bytes=size, params=params, peak_rss_bytes=footprint.peak_rss_bytes(),
                       gpu_memory=footprint.gpu_peak_memory(device), dataset=data.describe(),
                       backend_info={"version": backend.version(), "threads": torch.get_num_threads(),
                                     **backend.describe()},
                       weights=built.weights, compress_records=tuple(built.records))

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


def base_result(scenario: Scenario, variant: Variant) -> VariantResult:
    """What a variant's result says before anything is measured: which variant it is."""
    return VariantResult(name=variant.name, model=scenario.model_of(variant).name, backend=variant.backend.name,
                         compress=tuple(step.dump("method") for step in variant.compress))


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


def variant_in_folder(folder: RunFolder, name: str, bars: Any) -> VariantResult:
    """Measure one variant of the run in `folder` in this process (the isolated child's work)."""
    import torch

    from suite.run_plan import use_sys_path, variant_of_run

    use_sys_path(folder)
    scenario, options, variant, duplicates = variant_of_run(folder, name)
    return Bench(scenario, options, bars, torch.get_num_threads(), folder, duplicates).run_variant(variant)
