"""Per-operator time from each backend's own profiler, taken after the timed samples (so it never
touches them): torch.profiler for torch models, ONNX Runtime's session profiling, OpenVINO's
performance counters. A backend offers `profile_ops(run, inputs, calls)`, returning what its
profiler saw as Op rows, the wall seconds of those calls and how many it made; this module turns that into the
bounded table a result keeps (the top operators and an "other" row) and compares two tables.

Times are per model call. `outside_share` is the part of a call's timed median (profiler off) that
no operator accounts for: the framework's dispatch, Python, copies the profiler does not see. The
profiler's own cost lengthens the operators it times, so this is a lower bound of the overhead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

TOP_OPS = 15
# Operator families, by words in the operator's name as each profiler spells it (aten::addmm,
# QLinearConv, MatMulInteger, DynamicQuantizeMatMul, brgconv, FullyConnected, ...), first match
# wins: conversions are the ops that only change a tensor's type or layout (QuantizeLinear,
# quantize_per_tensor, Reorder, FakeQuantize), not the fused products that quantize their input.
FAMILIES = (
    ("conversion", ("quantizelinear", "quantize_per", "dequantize", "fakequantize", "reorder", "convert", "cast",
                    "_to_copy", "copy_", "to_dtype")),
    ("convolution", ("conv",)),
    ("matrix product", ("linear", "addmm", "matmul", "gemm", "bmm", "mm", "fullyconnected", "innerproduct", "lstm",
                        "gru", "rnn")),
    ("attention", ("attention", "softmax")),
    ("normalization", ("norm",)),
)


@dataclass(frozen=True)
class Op:
    """What a profiler saw of one operator over all the profiled calls."""

    name: str
    count: int  # times it ran
    seconds: float  # its own time (not its children's)
    precision: str | None = None  # where the profiler says: int8, f32, ...


def family(name: str) -> str:
    """The operator's family; ONNX Runtime's QLinear* ops are the op after the prefix (QLinearAdd
    is an addition, QLinearConv a convolution)."""
    lowered = name.lower().rsplit("::", 1)[-1]
    lowered = lowered.removeprefix("qlinear")
    return next((fam for fam, words in FAMILIES if any(w in lowered for w in words)), "other")


def table(ops: list[Op], calls: int, wall_s: float, timed_ms: float | None = None) -> dict:
    """The record a result keeps: per call, the top TOP_OPS operators by time (and the rest as one
    'other' row), each with its family, share of operator time and precision; and the share of
    a call outside operators: of `timed_ms` (the variant's timed median, profiler off) where
    given, else of the profiled calls' wall time (which the profiler's own cost inflates)."""
    merged: dict[tuple[str, str | None], list] = {}
    for op in ops:
        entry = merged.setdefault((op.name, op.precision), [0, 0.0])
        entry[0] += op.count
        entry[1] += op.seconds
    total = sum(seconds for _, seconds in merged.values())
    ranked = sorted(merged.items(), key=lambda item: -item[1][1])
    rows = [{"op": name, "family": family(name), "precision": precision, "per_call": count / calls,
             "ms": seconds / calls * 1e3, "share": seconds / total if total else 0.0}
            for (name, precision), (count, seconds) in ranked[:TOP_OPS]]
    rest = ranked[TOP_OPS:]
    if rest:
        seconds = sum(s for _, (_, s) in rest)
        rows.append({"op": f"other ({len(rest)} operators)", "family": "other", "precision": None,
                     "per_call": sum(c for _, (c, _) in rest) / calls, "ms": seconds / calls * 1e3,
                     "share": seconds / total if total else 0.0})
    whole_ms = timed_ms if timed_ms else wall_s / calls * 1e3
    return {"calls": calls, "wall_ms": wall_s / calls * 1e3, "ops_ms": total / calls * 1e3,
            "outside_share": max(0.0, 1 - total / calls * 1e3 / whole_ms) if whole_ms > 0 else None,
            "by_family": by_family(rows), "ops": rows}


def by_family(rows: list[dict]) -> dict[str, float]:
    """Milliseconds per call in each family of operators."""
    found: dict[str, float] = {}
    for row in rows:
        found[row["family"]] = found.get(row["family"], 0.0) + row["ms"]
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def calls_for(p50_ms: float, budget_s: float = 0.3, least: int = 1, most: int = 200) -> int:
    """How many calls to profile: about `budget_s` of them, within [least, most]."""
    return int(min(most, max(least, budget_s / max(p50_ms / 1e3, 1e-9))))


TORCH_MOST_CALLS = 20  # torch.profiler's summary costs ~0.2 ms per event: ResNet-20 x 200 calls took 15 s


def torch_ops(call: Callable[[], Any], calls: int,
              sync: Callable[[], None] = lambda: None) -> tuple[list[Op], float, int]:
    """torch.profiler over `calls` calls (at most TORCH_MOST_CALLS; the model is warm from its
    timed samples): every operator's own CPU time, the wall seconds and the calls made."""
    from torch.profiler import ProfilerActivity, profile

    calls = min(calls, TORCH_MOST_CALLS)
    sync()
    with native_stderr_to_null(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        sync()
        wall = time.perf_counter() - start
    return [Op(event.key, event.count, event.self_cpu_time_total / 1e6) for event in prof.key_averages()
            if event.self_cpu_time_total > 0], wall, calls


@contextmanager
def native_stderr_to_null() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: torch's profiler library prints a line on
    starting and stopping ('USDT: ... profiler_start') that no setting turns off."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def diff(mine: dict, reference: dict) -> dict:
    """Operator families of a variant against its reference's at one shape: each family's
    milliseconds per call on both sides and their ratio, and the operators the variant runs that
    the reference does not (added: quantize / dequantize, reorders, layout conversions)."""
    families = {}
    for fam in dict.fromkeys([*reference["by_family"], *mine["by_family"]]):
        before, after = reference["by_family"].get(fam, 0.0), mine["by_family"].get(fam, 0.0)
        families[fam] = {"reference_ms": before, "ms": after, "speedup": before / after if after and before else None}
    theirs = {row["op"] for row in reference["ops"]}
    added = [row for row in mine["ops"] if row["op"] not in theirs and not row["op"].startswith("other (")]
    return {"families": families, "added": [{"op": r["op"], "ms": r["ms"], "share": r["share"]} for r in added],
            "added_share": sum(r["share"] for r in added)}
