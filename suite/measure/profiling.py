"""Where a variant's time goes (measure.profile), measured after its timed samples so that it
never changes them: the work of one call at each timed shape (FLOPs, weight bytes) and where its
median stands against the machine's measured compute and bandwidth limits (suite.measure.work),
and the backend's own profiler, operator by operator (suite.measure.ops, through the backend's
`profile_ops`). Knows no backend by name: one without `profile_ops` gets no operator table, with
the reason. A generative decoder is profiled per token: its prefill (the time to first token) and
its decode steps (the time per output token), through the decoder's own `profile_ops(call, calls)`.
"""

from __future__ import annotations

from typing import Any

from suite.backends.base import Backend
from suite.lm import DecoderContract
from suite.measure import machine, ops, work
from suite.records import Profile, as_record
from suite.run.run_folder import RunFolder

AS_RUN = "the model as the backend gets it"


def profile_variant(run_model: Any, backend: Backend, backend_name: str, data: Any, rows: tuple, size_bytes: int | None,
                    counted: tuple[Any, str], limits: dict) -> Profile:
    """`counted`: the torch model to count FLOPs on, and what it is (see flops_model); the bytes
    read per call are its weights' where it is the model the backend runs, else `size_bytes`."""
    from suite.measure.measuring import batch_of

    model, counted_on = counted
    bytes_read = (work.weight_bytes(model) if counted_on == AS_RUN else None) or size_bytes
    flops_at: dict[int | None, tuple[int, dict] | None] = {}
    hook = backend.profile_ops
    shapes = []
    for row in (r for r in rows if r.metric == "call"):
        if row.seq_len not in flops_at:
            flops_at[row.seq_len] = work.count_flops(model, batch_of(data.test.x, 1, row.seq_len))
        counted_flops = flops_at[row.seq_len]
        flops = counted_flops[0] * row.batch_size if counted_flops else None
        table = None
        if hook is not None:
            inputs = backend.place(batch_of(data.test.x, row.batch_size, row.seq_len))
            found, wall, calls = hook(run_model, inputs, ops.calls_for(row.p50_ms))
            table = {"profiler": backend_name, **ops.table(found, calls, wall, row.p50_ms)}
        shapes.append({"shape": row.shape, "batch_size": row.batch_size, "seq_len": row.seq_len, "p50_ms": row.p50_ms,
                       "flops": flops, **work.roof(flops, bytes_read, row.p50_ms, limits), "ops": table})
    first = next((found for found in flops_at.values() if found), None)
    return as_record(Profile, {
        "shapes": shapes, "weight_bytes": bytes_read, "limits": limits, "top_modules": first[1] if first else None,
        "flops_counted_on": counted_on if first else f"not counted: {counted_on} showed the counter no work",
        "ops_reason": None if hook else f"backend {backend_name} has no per-operator profiler here"})


PREFILLS = 3  # prefills profiled per shape, each from an empty cache
DECODE_STEPS = 8  # decode steps profiled per shape: a 30-layer decoder's step is ~1,000 profiler events
DECODER_FLOPS = "2 per weight outside the embedding tables, per token (attention scores not counted)"


def profile_decoder(decoder: DecoderContract, backend: Backend, backend_name: str, data: Any, new_tokens: int, rows: tuple,
                    bytes_read: int | None, multiplied: int | None, limits: dict) -> Profile:
    """A decoder's profile at each timed prompt length and batch size: the prefill (a row per
    `ttft` shape) and one decode step (per `tpot` shape), each with its FLOPs (`multiplied`: its
    weights outside the embedding tables, suite.tasks.generate.matmul_weights), the weights it reads
    once per call (`bytes_read`; the KV cache's reads are not counted), its roofline position and
    its operators."""
    hook = decoder.profile_ops
    shapes = []
    for row in (r for r in rows if r.metric in ("ttft", "tpot")):
        tokens = row.batch_size * (row.seq_len if row.metric == "ttft" else 1)
        flops = 2 * multiplied * tokens if multiplied else None
        table = None
        if hook is not None and (row.metric == "ttft" or new_tokens > 2):
            prompt = backend.place(data.windows("test", row.seq_len, row.batch_size))
            found, wall, calls = decoder_ops(decoder, hook, prompt, row.metric, new_tokens)
            table = {"profiler": backend_name, **ops.table(found, calls, wall, row.p50_ms)}
        shapes.append({"shape": row.shape, "metric": row.metric, "batch_size": row.batch_size, "seq_len": row.seq_len,
                       "p50_ms": row.p50_ms, "flops": flops, **work.roof(flops, bytes_read, row.p50_ms, limits),
                       "ops": table})
    return as_record(Profile, {
        "shapes": shapes, "weight_bytes": bytes_read, "limits": limits,
        "flops_counted_on": DECODER_FLOPS if multiplied else "not counted: no weights outside the embedding tables",
        "ops_reason": None if hook else f"the decoder of backend {backend_name} has no per-operator profiler here"})


def decoder_ops(decoder: DecoderContract, hook: Any, prompt: Any, metric: str, new_tokens: int) -> tuple[list, float, int]:
    """What the profiler saw of PREFILLS prefills (the cache emptied before each, outside the
    profiler) or of up to DECODE_STEPS decode steps after a prefill and a first step: (ops, wall s, calls)."""
    batch, length = prompt.shape[0], prompt.shape[1] + new_tokens
    if metric == "ttft":
        found, wall = [], 0.0
        for _ in range(PREFILLS):
            decoder.start(batch, length)
            seen, seconds, _ = hook(lambda: decoder.prefill(prompt), 1)
            found, wall = found + seen, wall + seconds
        return found, wall, PREFILLS
    decoder.start(batch, length)
    token = [decoder.step(decoder.prefill(prompt))]  # the first step, at its new shape, is not profiled

    def step() -> None:
        token[0] = decoder.step(token[0])

    return hook(step, min(DECODE_STEPS, new_tokens - 2))


def flops_model(compressed: Any, uncompressed: Any, steps: int) -> tuple[Any, str]:
    """The model to count FLOPs on: the one the backend gets where it is a plain float torch model
    (pruning changes the work) or a PT2E graph (the counter sees its float operations), else the
    float model before its `steps` compression steps (a quantized module's kernel is not known to
    the counter; its nominal work is the float model's)."""
    import torch

    from suite.compress.record import is_subclass
    from suite.measure.footprint import weight_tensors

    if not steps:
        return compressed, AS_RUN
    if isinstance(compressed, torch.fx.GraphModule):  # a PT2E int8 graph runs dequantize -> float op -> quantize
        return compressed, "the quantized graph as the backend gets it (its operations on dequantized values)"
    if isinstance(compressed, torch.nn.Module) and not any(
            t.is_quantized or is_subclass(t) or not t.is_floating_point() for t in weight_tensors(compressed)):
        return compressed, AS_RUN
    return uncompressed, "the float model before compression (the counter cannot see quantized kernels)"


def run_limits(folder: RunFolder, device: str) -> dict:
    """The machine's limits, measured once per run (kept in the run folder's limits.json)."""
    return folder.limits(lambda: machine.limits(device))
