"""Generative decoders (a suite.lm.Decoder once prepared): perplexity, greedy tokens for
fidelity, the texts it writes, then requests timed at every prompt length and batch size (time
to first token, time per output token, whole requests), tokens/s, the KV cache's bytes, energy
where a counter can be read, the load mode, and every figure set against the machine's measured
limit (read bandwidth for decoding, matrix-multiply rate for prefill). Knows no plugin by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from suite.backends.base import Backend
from suite.config.scenario import Fidelity, Generate, Measure, Select, Variant
from suite.lm import DecoderContract
from suite.tasks.base import Task, agreement_reference, reference_outputs, run_fields

# The engine's types only: a scenario asks its tasks about its settings, and reading one stays light.
if TYPE_CHECKING:
    from suite.build.building import Built, Ready
    from suite.build.training import EpochCallback
    from suite.measure.measuring import Context, Measured
    from suite.results import LatencyResult, VariantResult
    from suite.run.bench import Bench

HARNESS_CALLS = 1000


def perplexity(decoder: DecoderContract, data: Any, gen: Generate, batch_size: int, split: str = "test",
               keep: bool = False, reference: dict | None = None) -> dict:
    """suite.lm.perplexity at the scenario's settings: with `keep`, this variant's summary for the
    others' divergence; with a `reference` summary, the divergence from it."""
    from suite.lm import perplexity as score

    return score(decoder, data, min(gen.perplexity_context, max_positions(decoder)), gen.perplexity_tokens, batch_size,
                 split, keep, reference)


def max_positions(decoder: DecoderContract) -> int:
    return model_positions(decoder.model)


def model_positions(model: Any) -> int:
    """The positions a causal LM's config allows (1 << 16 where it names none)."""
    config = model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 1 << 16


def batch_sizes_run(decoder: DecoderContract, batch_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The batch sizes the decoder can time (one that runs a bounded number of sequences at a time
    says so with `max_batch`)."""
    return tuple(b for b in batch_sizes if decoder.max_batch is None or b <= decoder.max_batch)


def greedy_tokens(decoder: DecoderContract, data: Any, gen: Generate, split: str = "test") -> Any:
    """Greedy tokens (prompts x fidelity_tokens) after the first fidelity_prompt_len tokens of
    consecutive windows of a split, as int64 numpy: compared with the reference variant's."""
    prompts = data.windows(split, gen.fidelity_prompt_len, gen.fidelity_prompts)
    return decoder.generate(prompts, gen.fidelity_tokens).numpy()


def texts(decoder: DecoderContract, data: Any, gen: Generate) -> list[dict]:
    """What the variant writes (greedy) after each of the scenario's text prompts; a prompt longer
    than the model's positions leave room for is cut to its last tokens (and says so)."""
    import torch

    room = max_positions(decoder) - gen.text_tokens  # check_lengths keeps it at 1 at least
    out = []
    for prompt in gen.texts:
        ids = data.tokenizer.encode(prompt, add_special_tokens=False) or [data.tokenizer.eos_token_id]
        # (-1: no token, where a decoder's answer came back as text shorter in tokens)
        tokens = [t for t in decoder.generate(torch.tensor([ids[-room:]]), gen.text_tokens)[0].tolist() if t >= 0]
        cut = {"prompt_tokens_dropped": len(ids) - room} if len(ids) > room else {}
        out.append({"prompt": prompt, "text": data.tokenizer.decode(tokens), "new_tokens": len(tokens), **cut})
    return out


def check_lengths(decoder: DecoderContract, gen: Generate, source: str) -> None:
    """Every request must fit the model's positions."""
    from suite.errors import SuiteError

    limit = max_positions(decoder)
    longest, asked = gen.longest_request()
    if longest > limit:
        raise SuiteError(f"{source}: measure.generate: {asked} need {longest} positions, but the model has {limit}")


def measure_generation(decoder: DecoderContract, backend: Backend, data: Any, measure: Measure, gen: Generate, ctx: Context,
                       weights_bytes: int, params: int, limits: dict) -> tuple[Measured, dict]:
    """Time requests at every (prompt length, batch size); return the rows and the decoder's own figures."""
    from suite.measure import timing
    from suite.measure.measuring import Measured, measure_energy

    device = backend.describe().get("device", "cpu")
    clock = timing.CudaEventClock() if device != "cpu" else time.perf_counter
    rows, rates, notes, caches, shapes = time_requests(decoder, backend, data, measure, gen, ctx)
    with ctx.phases("harness"):
        harness = timing.harness_cost(backend.synchronize, clock, HARNESS_CALLS)
    with ctx.phases("energy"):
        energy_result, energy_reason = measure_energy(shapes, backend.synchronize, device, measure)
    with ctx.phases("load mode"):
        loaded = load_mode(decoder, backend, data, measure, gen, rows, ctx)
    lines = roofline(rows, weights_bytes, params, limits)
    notes += above_the_limit(lines, limits)
    extra = {"kv_cache": caches, "roofline": lines, "weights_read_bytes": weights_bytes, "limits": limits}
    if decoder.load_sweep is not None:  # a server: concurrent users, then request rates
        with ctx.phases("load sweep"), ctx.bars.task(f"{ctx.name}: the server under load", total=None):
            sweep = decoder.load_sweep(data.windows("test", min(gen.prompt_lens), 8), gen.new_tokens,
                                       gen.server_requests, gen.server_min_s, gen.ttft_bound_ms, gen.tpot_bound_ms,
                                       measure.rate_steps, ctx.seed)
        load_rows, sweep = served_rows(sweep, min(gen.prompt_lens), ctx.round)
        rows += load_rows
        extra["endpoint"] = served_cost(sweep, measure.cost_per_hour)
    measured = Measured(latency=tuple(rows), throughput=tuple(rates), notes=tuple(notes),
                        harness_overhead_us=harness * 1e6, energy=energy_result, energy_reason=energy_reason,
                        load=loaded)
    return measured, extra


def served_rows(sweep: dict, prompt_len: int, round_: int) -> tuple[list, dict]:
    """Each load point's requests as latency rows of their own, one per request ("ttft at 4 users
    b=1 p=32", "tpot at 2/s b=1 p=32"), so that compare and gate judge a server under load as they
    judge any shape; and the sweep without the samples (the search's trials' are not kept)."""
    from suite.measure import timing
    from suite.measure.measuring import latency_result

    def without_samples(figures: dict) -> dict:
        return {k: v for k, v in figures.items() if k != "samples"}

    rows = []
    for point in sweep["points"]:
        users = point.get("concurrency")
        load = f"{users} user{'s' * (users != 1)}" if users else f"{point['rate']:g}/s"
        for metric in ("ttft", "tpot"):
            if point["samples"][metric]:
                measured = timing.Timing(tuple(point["samples"][metric]), 1, 0, 0.0, "enough")
                rows.append(latency_result(1, prompt_len, measured, f"{metric} at {load}", round_)[0])
    search = sweep.get("search")
    if search is not None:
        search = {**search, "trials": [without_samples(t) for t in search["trials"]]}
    return rows, {**sweep, "points": [without_samples(p) for p in sweep["points"]], "search": search}


def served_cost(sweep: dict, cost_per_hour: float | None) -> dict:
    """The sweep with the cost per million output tokens at the highest rate that met the bounds
    (None without a cost per hour or such a rate)."""
    best = (sweep.get("search") or {}).get("output_tokens_per_s")
    cost = cost_per_hour / 3600 / best * 1e6 if cost_per_hour and best else None
    return {**sweep, "cost_per_hour": cost_per_hour, "cost_per_million_tokens": cost}


def time_requests(decoder: DecoderContract, backend: Backend, data: Any, measure: Measure, gen: Generate,
                  ctx: Context) -> tuple[list, list, list[str], list[dict], list]:
    """Requests timed in this process at every (prompt length, batch size): the rows (ttft, tpot,
    request), the token rates, warnings, the KV cache's size, and each shape's call."""
    from suite.measure import decoding, timing
    from suite.measure.measuring import Shape, latency_result, timing_plan
    from suite.results import ThroughputResult, shape_label

    device = backend.describe().get("device", "cpu")
    clock = timing.CudaEventClock() if device != "cpu" else time.perf_counter
    plan = timing_plan(measure)
    rows, rates, notes, caches, shapes = [], [], [], [], []
    batches = batch_sizes_run(decoder, measure.batch_sizes)
    if batches != measure.batch_sizes:
        notes.append(f"batch sizes above {decoder.max_batch} not timed: the backend "
                     f"decodes at most {decoder.max_batch} sequence(s) at a time")
    for prompt_len in gen.prompt_lens:
        for batch in batches:
            prompt = backend.place(data.windows("test", prompt_len, batch))
            label = shape_label(batch, prompt_len, "request")
            with ctx.bars.task(f"measuring {ctx.name} {label}", total=plan.min_samples) as task:
                started = time.perf_counter()
                done = decoding.time_requests(decoder, prompt, gen.new_tokens, backend.synchronize, plan, clock,
                                              on_request=lambda n: task.update(n))
                wall = time.perf_counter() - started
            sampled = sum(done.request_s)
            ctx.phases.add("sampling", sampled)
            ctx.phases.add("warm-up", max(wall - sampled, 0.0))
            for metric, samples in (("ttft", done.prefill_s), ("tpot", done.step_s), ("request", done.request_s)):
                row, row_notes = latency_result(batch, prompt_len, timing.Timing(
                    samples, 1, done.warmup_requests, 0.0, done.stopped_by), metric, ctx.round)
                rows.append(row)
                notes += row_notes
                tokens = {"ttft": batch * prompt_len, "tpot": batch, "request": batch * gen.new_tokens}[metric]
                rates.append(ThroughputResult(batch, tokens / (row.p50_ms / 1e3), prompt_len, metric))
            caches.append({"batch_size": batch, "prompt_len": prompt_len, "bytes": done.cache_bytes})
            call = request_call(decoder, prompt, gen.new_tokens)  # host to host already: one call serves both
            shapes.append(Shape(batch, prompt_len, call, call))
    return rows, rates, notes, caches, shapes


def request_call(decoder: DecoderContract, prompt: Any, new_tokens: int) -> Any:
    def call() -> None:
        decoder.generate(prompt, new_tokens)

    return call


def matmul_weights(model: Any) -> int:
    """Weights a prefill multiplies by: every distinct parameter (tied ones once) outside the
    embedding tables, which are looked up, not multiplied (the output head runs for the last
    position only, as transformers' generate does: counted once per sequence, so left out too
    when it is tied to the input embedding). Count it on the model before compression: quantized
    layers hide their weights from parameters()."""
    import torch

    embedded = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    seen = {id(p): p.numel() for p in model.parameters() if id(p) not in embedded}
    return sum(seen.values())


def weights_read_bytes(model: Any, size: int) -> int:
    """Bytes of weights one decode step reads: the model's size less the embedding tables that are
    only looked up (a row per token). A table tied to a projection (a tied output head) is read
    whole, so it stays; once compression gave the head its own quantized copy, the float table
    is looked up only."""
    import torch

    projected = set()
    for module in model.modules():
        if not isinstance(module, torch.nn.Embedding):
            for param in module.parameters(recurse=False):
                try:
                    projected.add(param.data_ptr())
                except RuntimeError:  # a tensor subclass without storage of its own
                    pass
    looked_up = sum(m.weight.nbytes for m in model.modules()
                    if isinstance(m, torch.nn.Embedding) and m.weight.data_ptr() not in projected)
    return max(size - looked_up, 0)


def roofline(rows: list[LatencyResult], weights_bytes: int, params: int, limits: dict) -> list[dict]:
    """Each decode row's achieved read bandwidth (every weight read once per step: the weights a
    step reads, weights_read_bytes, / time per output token; KV-cache reads not counted, so a
    lower bound) and each prefill row's achieved FLOP/s (2 per multiplied weight per prompt token, `params` from matmul_weights;
    attention scores not counted), against the machine's measured limits."""
    out = []
    for row in rows:
        if row.metric == "tpot":
            achieved = weights_bytes / (row.p50_ms / 1e3) / 1e9
            out.append({"metric": "tpot", "batch_size": row.batch_size, "prompt_len": row.seq_len,
                        "achieved_gbps": achieved, "limit_gbps": limits["read_bandwidth_gbps"],
                        "share": achieved / limits["read_bandwidth_gbps"]})
        elif row.metric == "ttft":
            achieved = 2 * params * row.batch_size * row.seq_len / (row.p50_ms / 1e3) / 1e9
            out.append({"metric": "ttft", "batch_size": row.batch_size, "prompt_len": row.seq_len,
                        "achieved_gflops": achieved, "limit_gflops": limits["matmul_gflops"],
                        "share": achieved / limits["matmul_gflops"]})
    return out


def above_the_limit(lines: list[dict], limits: dict) -> list[str]:
    """A note for each figure above its measured limit: the probes are lower bounds of the
    machine's limits (one way of reading memory; one float32 matrix shape, while int8 products
    and other kernels can go faster), and a backend may beat them."""
    probe = {"tpot": "read bandwidth (a sum over 512 MiB)", "ttft": "float32 matmul rate (one square shape)"}
    return [f"{row['metric']} b={row['batch_size']} p={row['prompt_len']}: {row['share']:.0%} of the measured "
            f"{probe[row['metric']]}: the probe is a lower bound of this machine's limit, and this backend beats it"
            for row in lines if row["share"] > 1]


def load_mode(decoder: DecoderContract, backend: Backend, data: Any, measure: Measure, gen: Generate, rows: list[LatencyResult],
              ctx: Context) -> dict | None:
    from suite.measure import decoding, load

    if measure.mode == "offline":  # the best decode tokens/s over batch sizes, at the first prompt length
        first = gen.prompt_lens[0]
        return load.offline_summary([(r.batch_size, r.samples_ms) for r in rows
                                     if r.metric == "tpot" and r.seq_len == first])
    if measure.mode != "server":
        return None
    prompt_len = min(gen.prompt_lens)
    request = next(r for r in rows if r.metric == "request" and r.batch_size == 1 and r.seq_len == prompt_len)
    prompt = backend.place(data.windows("test", prompt_len, 1))
    clock = time.perf_counter

    def serve() -> tuple[float, list[float]]:
        return decoding.one_request(decoder, prompt, gen.new_tokens, backend.synchronize, clock)

    with ctx.bars.task(f"{ctx.name}: server mode, highest request rate with p99 TTFT <= {gen.ttft_bound_ms:g} ms "
                       f"and TPOT <= {gen.tpot_bound_ms:g} ms", total=measure.rate_steps) as task:
        steps = iter(range(measure.rate_steps))

        def run_at(rate: float) -> list:
            task.update(next(steps), note=f"{rate:,.2f} requests/s")
            return load.poisson_requests(serve, rate, load.trial_requests(rate, gen.server_requests, gen.server_min_s),
                                         ctx.seed)

        result = load.search_request_rate(run_at, request.p50_ms / 1e3, gen.ttft_bound_ms, gen.tpot_bound_ms,
                                          measure.rate_steps)
    return {**result, "prompt_len": prompt_len, "new_tokens": gen.new_tokens, "batch_size": 1}


def fidelity_warnings(fidelity: dict, reference: str, ppl: float, reference_ppl: float | None,
                      tolerance: Fidelity) -> list[str]:
    """Warnings for a mean KL divergence above the bound, the same top token less often than the
    floor, greedy agreement below its floor (where one is set) and perplexity above the
    reference's by more than the tolerance (`fidelity["perplexity_increase"]`, None without a
    reference perplexity)."""
    notes = []
    if fidelity.get("kld_mean") is not None and fidelity["kld_mean"] > tolerance.max_kld_mean:
        notes.append(f"mean KL divergence from {reference!r} {fidelity['kld_mean']:.4g} is above "
                     f"fidelity.max_kld_mean {tolerance.max_kld_mean:g} (99th percentile {fidelity['kld_p99']:.3g})")
    if fidelity.get("top1_agreement") is not None and fidelity["top1_agreement"] < tolerance.min_top1_agreement:
        notes.append(f"the same top token as {reference!r} at {fidelity['top1_agreement']:.2%} of positions is below "
                     f"fidelity.min_top1_agreement {tolerance.min_top1_agreement:.2%}")
    if tolerance.min_greedy_agreement is not None and fidelity["greedy_agreement"] < tolerance.min_greedy_agreement:
        notes.append(f"greedy agreement with {reference!r} {fidelity['greedy_agreement']:.4f} is below "
                     f"fidelity.min_greedy_agreement {tolerance.min_greedy_agreement} (first divergence at token "
                     f"{fidelity['first_divergence_mean']:.1f} on average)")
    increase = fidelity["perplexity_increase"]
    if increase is not None and increase > tolerance.max_perplexity_increase:
        notes.append(f"perplexity {ppl:.3f} is {increase:.1%} above {reference!r}'s {reference_ppl:.3f} "
                     f"(fidelity.max_perplexity_increase {tolerance.max_perplexity_increase:.1%})")
    return notes


def quality_fields(measured: Measured, extra: dict, ppl: dict, fidelity: dict | None, reference: str,
                   written: list[dict], gen: Generate, batch_sizes: tuple[int, ...], notes: list[str]) -> dict:
    """The variant's result fields for a decoder's quality and timed requests."""
    generation = {"settings": {**gen.model_dump(mode="json"), "batch_sizes": list(batch_sizes)},
                  "perplexity": ppl, "fidelity": fidelity, "texts": written, **extra}
    return {"accuracy": None, "accuracy_reason": "a generative decoder: see generation.perplexity",
            "agreement": fidelity.get("top1_agreement") if fidelity else None, "fidelity": fidelity,
            "agreement_with": reference, **measured.fields(), "warnings": tuple(notes) + measured.notes,
            "generation": generation}


@dataclass(frozen=True)
class GenerateTask(Task):
    name: str = "generate"
    description: str = "a generative decoder"
    judged: str = "val perplexity"

    def conflict(self, what: str, model: Any, variant: Variant, measure: Measure) -> tuple[tuple, str] | None:
        """Server mode's bounds, the search's goal, and requests that need more positions than the
        model's settings or config give it."""
        from suite.registry import MODELS

        if measure is not None and measure.mode == "server" and None in (measure.generate.ttft_bound_ms,
                                                                         measure.generate.tpot_bound_ms):
            return ("measure", "generate", "ttft_bound_ms"), f"{what}: mode server needs generate.ttft_bound_ms and tpot_bound_ms"
        goal = variant.search.goal if variant.search is not None else None
        if goal is not None and goal.max_accuracy_drop is not None:
            return ("search", "goal", "max_accuracy_drop"), (f"{what}: use max_kld_mean, min_top1_agreement, "
                                                             "max_perplexity_increase or min_agreement (greedy tokens)")
        spec = MODELS.get(model.name)
        limit = spec.positions(model.params) if spec.positions is not None and measure is not None else None
        needed, asked = measure.generate.longest_request() if limit is not None else (0, "")
        if limit is not None and needed > limit:
            return ("measure", "generate"), f"{asked} need {needed} positions, but model {model.name!r} has {limit}"
        return None

    def prepare(self, built: Built, source: str) -> Any:
        """The backend's suite.lm.Decoder, its requests checked against the model's positions."""
        decoder = built.backend.prepare_decoder(built.model, built.measure.generate.cache, built.data.tokenizer,
                                                built.data.train_ids)
        try:
            check_lengths(decoder, built.measure.generate, source)
        except BaseException:
            decoder.close()
            raise
        return decoder

    def measure(self, bench: Bench, built: Built) -> dict:
        """Perplexity, greedy fidelity, texts, then requests timed token by token; the decoder
        closed (a server stopped) however it ends."""
        decoder = bench.builder.prepare(built)
        try:
            return self._measured(bench, built, decoder)
        finally:
            decoder.close()

    def _measured(self, bench: Bench, built: Built, decoder: DecoderContract) -> dict:
        from suite.measure import footprint
        from suite.measure.profiling import profile_decoder, run_limits

        variant, backend, measure, data, model, gen = (
            built.variant, built.backend, built.measure, built.data, built.model, built.measure.generate)
        device = backend.describe().get("device", "cpu")
        # A backend that runs the model's own file reads that file's bytes, not the float model's.
        size = decoder.file_bytes or footprint.serialized_size_bytes(model)
        reference = agreement_reference(bench.scenario, variant, built.model_ref)
        with bench.phases("perplexity"):  # and the divergence from the reference, teacher-forced
            ppl = perplexity(decoder, data, gen, measure.eval_batch_size or max(measure.batch_sizes),
                             keep=reference == variant.name, reference=bench.folder.logits(reference)
                             if reference != variant.name else None)
            if "summary" in ppl:
                bench.folder.save_logits(variant.name, ppl.pop("summary"))
        with bench.phases("agreement"):
            tokens = greedy_tokens(decoder, data, gen)
            bench.folder.save_outputs(variant.name, tokens)
            reference, fidelity, notes = self.agreement(bench, built, tokens, ppl, decoder.retokenized)
        with bench.phases("texts"):
            written = texts(decoder, data, gen)
        limits = run_limits(bench.folder, device)
        multiplied = matmul_weights(bench.builder.uncompressed(built.model_ref, data))
        read = decoder.weights_read_bytes or weights_read_bytes(model, size)
        timed, extra = measure_generation(decoder, backend, data, measure, gen, bench.context(variant), read,
                                          multiplied, limits)
        profiled = None
        if measure.profile:
            with bench.phases("profile"), bench.bars.task(f"{variant.name}: where the time goes", total=None):
                profiled = profile_decoder(decoder, backend, variant.backend.name, data, gen.new_tokens,
                                           timed.latency, read, multiplied, limits)
        return {**quality_fields(timed, extra, ppl, fidelity, reference, written, gen, measure.batch_sizes, notes),
                "profile": profiled, "size_bytes": size, **run_fields(built)}

    def time_again(self, bench: Bench, built: Built, round_: int) -> tuple[tuple, list[str]]:
        """Requests timed in this later process of the variant, at every shape."""
        decoder = bench.builder.prepare(built)
        try:
            rows, _, notes, _, _ = time_requests(decoder, built.backend, built.data, built.measure,
                                                 built.measure.generate, bench.context(built.variant, round_))
        finally:
            decoder.close()
        return tuple(rows), notes

    def agreement(self, bench: Bench, built: Built, tokens: Any, ppl: dict,
                  retokenized: Any = None) -> tuple[str, dict | None, list[str]]:
        """The reference variant, the divergence from its next-token distributions (in `ppl`), how
        far the greedy `tokens` follow its tokens (through `retokenized` where the decoder's tokens
        went through text), and warnings."""
        from suite.lm import greedy_fidelity

        reference, expected = reference_outputs(bench, built)
        if expected is not None and retokenized is not None and expected.shape == tokens.shape:
            expected = retokenized(expected)
        diverged = ppl.pop("divergence", None)
        if expected is None or expected.shape != tokens.shape:
            why = "did not run or failed" if expected is None else f"made tokens of shape {expected.shape}"
            return reference, None, [f"fidelity not measured: reference variant {reference!r} {why}"]
        why = ppl.pop("divergence_reason", None) or f"reference variant {reference!r} saved no logits"
        notes = [] if diverged else [f"KL divergence not measured: {why}"]
        fidelity = {**greedy_fidelity(tokens, expected), **(diverged or {})}
        saved = bench.folder.finished(reference) if reference != built.variant.name else None
        reference_ppl = saved.perplexity if saved else ppl["perplexity"]
        fidelity["perplexity_increase"] = ppl["perplexity"] / reference_ppl - 1 if reference_ppl else None
        return reference, fidelity, notes + fidelity_warnings(fidelity, reference, ppl["perplexity"], reference_ppl,
                                                              bench.scenario.fidelity)

    def ready(self, built: Built, prepared: Any, threads: int, source: str) -> Ready:
        """Timed in whole requests at each (batch size, prompt length)."""
        from suite.build.building import Ready

        gen, batches = built.measure.generate, batch_sizes_run(prepared, built.measure.batch_sizes)
        return Ready(prepared, built.backend, built.data, threads, [(b, p) for p in gen.prompt_lens for b in batches],
                     new_tokens=gen.new_tokens, task=self)

    def paired(self, sides: list, batch_size: int, seq_len: int | None, plan: Any, bar: Any) -> dict:
        from suite.analysis.gate import request_rounds

        return request_rounds([side.request(batch_size, seq_len) for side in sides], sides, plan, bar)

    def judge(self, run: Any, built: Built, measure: Measure, batch: int, reference: list | None,
              source: str) -> tuple[dict, Any, tuple[float, ...]]:
        """Perplexity, the divergence from the reference trial's next-token distributions and
        greedy agreement with its tokens, on the validation split, and the times of its decode steps
        at `batch` (time per output token) after a prompt of the first prompt length, over
        DECODER_REQUESTS greedy requests. Its outputs: its greedy tokens and (the reference trial)
        its summary for the divergence of the others."""
        from suite.build.search import DECODER_REQUESTS
        from suite.lm import greedy_fidelity
        from suite.measure.decoding import one_request

        data, backend, gen = built.data, built.backend, built.measure.generate
        ppl = perplexity(run, data, gen, measure.eval_batch_size or max(measure.batch_sizes), "val",
                         keep=not reference, reference=reference[0]["summary"] if reference else None)
        # The reference trial against itself: no divergence, the same top token everywhere.
        diverged = ppl.get("divergence") or ({} if reference else {"kld_mean": 0.0, "top1_agreement": 1.0})
        tokens = greedy_tokens(run, data, gen, "val")
        prompt = backend.place(data.windows("val", gen.prompt_lens[0], batch))
        one_request(run, prompt, gen.new_tokens, backend.synchronize, time.perf_counter)  # warm-up
        steps = [s for _ in range(DECODER_REQUESTS)
                 for s in one_request(run, prompt, gen.new_tokens, backend.synchronize, time.perf_counter)[1]]
        return ({"val_accuracy": None, "perplexity": ppl["perplexity"], "seq_len": gen.prompt_lens[0],
                 "kld_mean": diverged.get("kld_mean"), "top1_agreement": diverged.get("top1_agreement"),
                 "agreement": greedy_fidelity(tokens, reference[0]["tokens"] if reference else tokens)["greedy_agreement"]},
                {"tokens": tokens, "summary": ppl.get("summary")}, tuple(steps))

    def sample_batches(self, built: Built, batch_size: int) -> list:
        """WINDOWS windows of WINDOW_TOKENS validation tokens."""
        from suite.build.sensitivity import WINDOW_TOKENS, WINDOWS

        return [built.data.windows("val", min(WINDOW_TOKENS, model_positions(built.model)), WINDOWS)]

    def train(self, model: Any, data: Any, config: Any, seed: int, on_epoch: EpochCallback) -> dict:
        from suite.build.training import train_lm

        return train_lm(model, data, config, seed, on_epoch)

    def select(self, v: VariantResult, reference: VariantResult | None, select: Select) -> tuple[dict, list[str], str | None]:
        """By the bounds select sets: the mean KL divergence from the reference's next-token
        distributions, the share of positions with the same top token, perplexity increase
        (relative), greedy agreement; so that a fast variant whose text has gone wrong is rejected."""
        if select.max_perplexity_increase is None and select.max_kld_mean is None:
            return {}, [], "a generative decoder, and select has no max_kld_mean or max_perplexity_increase"
        fidelity = v.fidelity
        figures, over = {}, []
        if select.max_perplexity_increase is not None:
            if v.perplexity is None:
                return {}, [], "no perplexity"
            if reference is None or reference.perplexity is None:
                return {}, [], f"reference variant {v.agreement_with!r} has no perplexity"
            increase = v.perplexity / reference.perplexity - 1
            figures.update(perplexity=round(v.perplexity, 6), perplexity_increase=round(increase, 6))
            over += ["max_perplexity_increase"] if increase > select.max_perplexity_increase + 1e-12 else []
        bounds = (("kld_mean", select.max_kld_mean, 1, "KL divergence"),
                  ("top1_agreement", select.min_top1_agreement, -1, "top-1 agreement"),
                  ("greedy_agreement", select.min_greedy_agreement, -1, "greedy agreement"))
        for field, limit, sign, words in bounds:
            if limit is None:
                continue
            figure = getattr(fidelity, field, None) if fidelity else None
            if figure is None:
                return figures, over, f"{words} not measured"
            figures[field] = round(figure, 6)
            if sign * (figure - limit) > 1e-12:
                over.append(("max_" if sign > 0 else "min_") + field)
        return figures, over, None

    def report_section(self, variants: tuple[VariantResult, ...]) -> str:
        """Quality and speed side by side, perplexity against tokens/s, the read bandwidth decoding
        reached against the machine's measured limit, and the texts they wrote."""
        from html import escape

        from suite.report import figures, tables

        decoders = tuple(v for v in variants if v.generation)
        if not decoders:
            return ""
        settings = decoders[0].generation["settings"]
        first = settings["prompt_lens"][0]
        limits = decoders[0].generation.get("limits") or {}

        def ms_per_token(v: VariantResult) -> float | None:
            row = tables.decoder_figure(v, "tpot", 1, first)
            return row and row.p50_ms

        intro = (f"<p>Greedy decoding of {settings['new_tokens']} new tokens (no early stop) after prompts of "
                 f"{', '.join(map(str, settings['prompt_lens']))} tokens from the held-out text; KV cache "
                 f"{escape(settings['cache'])}. TTFT: time to first token (the prefill); TPOT: time per output token "
                 f"after the first; tokens/s: batch size / TPOT. Perplexity: held-out text in windows of "
                 f"{settings['perplexity_context']} tokens. Greedy agreement: the share of {settings['fidelity_tokens']} "
                 f"greedy tokens after {settings['fidelity_prompts']} prompts equal to the reference's. Bandwidth share: "
                 f"weights bytes / TPOT against the read bandwidth measured on this machine "
                 f"({limits.get('read_bandwidth_gbps', '?')} GB/s; KV-cache reads not counted).</p>")
        bandwidth = figures.bandwidth_figure(decoders, "decoder-bandwidth") or ""
        return ("<h2>Generative decoders</h2>" + intro + tables.decoders_table(decoders)
                + f"<h3>Perplexity against time per output token (b=1, p={first})</h3>"
                + figures.pareto_figure(decoders, ms_per_token, "time per output token, ms", "decoder-pareto",
                                        quality=lambda v: v.perplexity, quality_title="perplexity", lower_better=True)
                + "<h3>Read bandwidth reached while decoding</h3>" + bandwidth
                + served(decoders)
                + "<h3>What each variant wrote</h3>" + tables.texts_table(decoders))


def served(decoders: tuple[VariantResult, ...]) -> str:
    """The servers' load points, and the highest rate that met the bounds with its cost."""
    from html import escape

    from suite.report import figures, tables

    table = tables.endpoint_table(decoders)
    sweeps = [(v, tables.generation_of(v, "endpoint")) for v in decoders if tables.generation_of(v, "endpoint")]
    if not table or not sweeps:
        return ""
    best = []
    for v, sweep in sweeps:
        search = sweep.get("search")
        if search is not None:
            rate, cost = search["max_rate_rps"], sweep.get("cost_per_million_tokens")
            best.append(f"<li>{escape(v.name)}: " + (f"{rate:.3g} requests/s ({search['output_tokens_per_s']:,.1f} "
                        "output tokens/s)" + (f", {cost:.3g} per million output tokens at {sweep['cost_per_hour']:g} "
                                               "per hour" if cost else "") if rate else "no rate tried met them")
                        + (f" (the search stopped: {escape(search['stopped'])})" if search.get("stopped") else "") + "</li>")
    bounds = sweeps[0][1]
    head = (f"<p>The highest Poisson rate with p99 TTFT &le; {bounds['ttft_bound_ms']:g} ms and p99 TPOT &le; "
            f"{bounds['tpot_bound_ms']:g} ms, no request failed:</p><ul>{''.join(best)}</ul>"
            if best and bounds.get("ttft_bound_ms") else "")
    floor = next((sweep["client"] for _, sweep in sweeps if sweep.get("client")), None)
    client = (f"<p>The client's own cost (against a trivial local endpoint that answers at once): TTFT "
              f"{floor['ttft']['p50_ms']:.2f} ms, gap between chunks {floor['itl']['p50_ms'] * 1e3:.0f} µs (medians): "
              "no figure below can be told apart from these.</p>" if floor and floor.get("ttft") else "")
    return ("<h3>Behind a server, under load</h3><p>Streamed requests from concurrent users (each sends its next "
            "request when answered) and from Poisson arrivals (time from the arrival: queueing counts); tokens counted "
            "with the model's tokenizer; p99: of the samples (the results add its 99 %-confidence bound where there "
            "are samples enough).</p>" + client + head + (figures.endpoint_figures(decoders, "endpoint-load") or "")
            + table)


GENERATE = GenerateTask()
