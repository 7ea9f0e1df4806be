"""Measuring one prepared generative decoder (a suite.lm.Decoder): perplexity, greedy tokens for
fidelity, the texts it writes, then requests timed at every prompt length and batch size (time
to first token, time per output token, whole requests), tokens/s, the KV cache's bytes, energy
where a counter can be read, the load mode, and every figure set against the machine's measured
limit (read bandwidth for decoding, matrix-multiply rate for prefill). Knows no plugin by name.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from suite.measure import decoding, load, timing
from suite.measuring import Context, Measured, Shape, latency_result, measure_energy, timing_plan
from suite.results import LatencyResult, ThroughputResult, shape_label

HARNESS_CALLS = 1000


def perplexity(decoder: Any, data: Any, gen: Any, batch_size: int, split: str = "test") -> dict:
    from suite.lm import perplexity as score

    return score(decoder, data, min(gen.perplexity_context, max_positions(decoder)), gen.perplexity_tokens, batch_size,
                 split)


def max_positions(decoder: Any) -> int:
    return model_positions(decoder.model)


def model_positions(model: Any) -> int:
    """The positions a causal LM's config allows (1 << 16 where it names none)."""
    config = model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 1 << 16


def batch_sizes_run(decoder: Any, batch_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The batch sizes the decoder can time (one that runs a bounded number of sequences at a time
    says so with `max_batch`)."""
    largest = getattr(decoder, "max_batch", None)
    return tuple(b for b in batch_sizes if largest is None or b <= largest)


def greedy_tokens(decoder: Any, data: Any, gen: Any, split: str = "test") -> Any:
    """Greedy tokens (prompts x fidelity_tokens) after the first fidelity_prompt_len tokens of
    consecutive windows of a split, as int64 numpy: compared with the reference variant's."""
    prompts = data.windows(split, gen.fidelity_prompt_len, gen.fidelity_prompts)
    return decoder.generate(prompts, gen.fidelity_tokens).numpy()


def texts(decoder: Any, data: Any, gen: Any) -> list[dict]:
    """What the variant writes (greedy) after each of the scenario's text prompts; a prompt longer
    than the model's positions leave room for is cut to its last tokens (and says so)."""
    import torch

    room = max_positions(decoder) - gen.text_tokens  # check_lengths keeps it at 1 at least
    out = []
    for prompt in gen.texts:
        ids = data.tokenizer.encode(prompt, add_special_tokens=False) or [data.tokenizer.eos_token_id]
        tokens = decoder.generate(torch.tensor([ids[-room:]]), gen.text_tokens)[0].tolist()
        cut = {"prompt_tokens_dropped": len(ids) - room} if len(ids) > room else {}
        out.append({"prompt": prompt, "text": data.tokenizer.decode(tokens), "new_tokens": len(tokens), **cut})
    return out


def check_lengths(decoder: Any, gen: Any, source: str) -> None:
    """Every request must fit the model's positions."""
    from suite.errors import SuiteError

    limit = max_positions(decoder)
    longest, asked = gen.longest_request()
    if longest > limit:
        raise SuiteError(f"{source}: measure.generate: {asked} need {longest} positions, but the model has {limit}")


def measure_generation(decoder: Any, backend: Any, data: Any, measure: Any, gen: Any, ctx: Context,
                       weights_bytes: int, params: int, limits: dict) -> tuple[Measured, dict]:
    """Time requests at every (prompt length, batch size); return the rows and the decoder's own figures."""
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
                    samples, 1, done.warmup_requests, 0.0, done.stopped_by), metric)
                rows.append(row)
                notes += row_notes
                tokens = {"ttft": batch * prompt_len, "tpot": batch, "request": batch * gen.new_tokens}[metric]
                rates.append(ThroughputResult(batch, tokens / (row.p50_ms / 1e3), prompt_len, metric))
            caches.append({"batch_size": batch, "prompt_len": prompt_len, "bytes": done.cache_bytes})
            call = request_call(decoder, prompt, gen.new_tokens)  # host to host already: one call serves both
            shapes.append(Shape(batch, prompt_len, call, call))
    with ctx.phases("harness"):
        harness = timing.harness_cost(backend.synchronize, clock, HARNESS_CALLS)
    with ctx.phases("energy"):
        energy_result, energy_reason = measure_energy(shapes, backend.synchronize, device, measure)
    with ctx.phases("load mode"):
        loaded = load_mode(decoder, backend, data, measure, gen, rows, ctx)
    lines = roofline(rows, weights_bytes, params, limits)
    notes += above_the_limit(lines, limits)
    extra = {"kv_cache": caches, "roofline": lines, "weights_read_bytes": weights_bytes, "limits": limits}
    measured = Measured(latency=tuple(rows), throughput=tuple(rates), notes=tuple(notes),
                        harness_overhead_us=harness * 1e6, energy=energy_result, energy_reason=energy_reason,
                        load=loaded)
    return measured, extra


def request_call(decoder: Any, prompt: Any, new_tokens: int) -> Any:
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


def load_mode(decoder: Any, backend: Any, data: Any, measure: Any, gen: Any, rows: list[LatencyResult],
              ctx: Context) -> dict | None:
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
            return load.poisson_requests(serve, rate, gen.server_requests, ctx.seed)

        result = load.search_request_rate(run_at, request.p50_ms / 1e3, gen.ttft_bound_ms, gen.tpot_bound_ms,
                                          measure.rate_steps)
    return {**result, "prompt_len": prompt_len, "new_tokens": gen.new_tokens, "batch_size": 1}


def fidelity_warnings(fidelity: dict, reference: str, ppl: float, reference_ppl: float | None,
                      tolerance: Any) -> list[str]:
    """Warnings for greedy agreement below the floor and perplexity above the reference's by more
    than the tolerance (`fidelity["perplexity_increase"]`, None without a reference perplexity)."""
    notes = []
    if fidelity["greedy_agreement"] < tolerance.min_greedy_agreement:
        notes.append(f"greedy agreement with {reference!r} {fidelity['greedy_agreement']:.4f} is below "
                     f"fidelity.min_greedy_agreement {tolerance.min_greedy_agreement} (first divergence at token "
                     f"{fidelity['first_divergence_mean']:.1f} on average)")
    increase = fidelity["perplexity_increase"]
    if increase is not None and increase > tolerance.max_perplexity_increase:
        notes.append(f"perplexity {ppl:.3f} is {increase:.1%} above {reference!r}'s {reference_ppl:.3f} "
                     f"(fidelity.max_perplexity_increase {tolerance.max_perplexity_increase:.1%})")
    return notes


def with_quality(base: Any, measured: Measured, extra: dict, ppl: dict, fidelity: dict | None, reference: str,
                 written: list[dict], gen: Any, batch_sizes: tuple[int, ...], notes: list[str]) -> Any:
    """The variant's result fields for a decoder."""
    generation = {"settings": {**gen.model_dump(mode="json"), "batch_sizes": list(batch_sizes)},
                  "perplexity": ppl, "fidelity": fidelity, "texts": written, **extra}
    return replace(base, accuracy=None, accuracy_reason="a generative decoder: see generation.perplexity",
                   agreement=fidelity["greedy_agreement"] if fidelity else None, fidelity=fidelity,
                   agreement_with=reference, **measured.fields(), warnings=tuple(notes) + measured.notes,
                   generation=generation)
