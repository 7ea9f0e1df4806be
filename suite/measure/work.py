"""The work one call does, and where a variant stands against the machine's limits.

FLOPs come from torch's FlopCounterMode (per module and in total; a multiply-add counts 2),
counted on the torch model as it reaches the backend, or on the model before compression where
the counter cannot see the work (a quantized module's kernels are not known to it: the nominal
work is the same). They are counted at batch 1 at each sequence length and multiplied by the
batch size: every model here does the same work per input. Bytes are those of the weights one
call reads (each weight once). Against the run's measured limits (suite.measure.machine: the
float32 matrix-multiply rate and the read bandwidth, both lower bounds of the true peaks), each
shape gets its share of the compute roof and of the bandwidth roof, and what bounds it.
"""

from __future__ import annotations

from typing import Any

TOP_MODULES = 8
OVERHEAD_SHARE = 0.10  # below this share of both roofs a call is bound by overhead, not by the hardware
ROOF_SHARE = 0.50  # above this share of a roof, that roof bounds it


def count_flops(model: Any, inputs: Any) -> tuple[int, dict[str, int]] | None:
    """(FLOPs of one call on `inputs`, the top modules' FLOPs), or None where the counter saw no work."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, torch.nn.Module):
        return None
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(inputs)
    except Exception:  # a model the counter cannot trace through (a compiled or quantized graph)
        return None
    total = counter.get_total_flops()
    if not total:
        return None
    by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items() if name != "Global"}
    leaves = {name: flops for name, flops in by_module.items()
              if not any(other.startswith(name + ".") for other in by_module)}
    top = dict(sorted(leaves.items(), key=lambda item: -item[1])[:TOP_MODULES])
    return int(total), {name: int(flops) for name, flops in top.items()}


def weight_bytes(model: Any) -> int | None:
    """Bytes of the weights a call reads, each once (parameters, or the quantized weights that
    replaced them, at their stored size), or None for a model that is not a torch module."""
    import torch

    from suite.measure.footprint import weight_tensors

    if not isinstance(model, torch.nn.Module):
        return None
    return int(sum(t.numel() * t.element_size() for t in weight_tensors(model)))


def roof(flops: int | None, bytes_read: int | None, p50_ms: float, limits: dict) -> dict:
    """One call's achieved GFLOP/s and GB/s, their shares of the measured limits, and what bounds it."""
    seconds = p50_ms / 1e3
    gflops = flops / seconds / 1e9 if flops else None
    gbps = bytes_read / seconds / 1e9 if bytes_read else None
    compute = gflops / limits["matmul_gflops"] if gflops is not None else None
    bandwidth = gbps / limits["read_bandwidth_gbps"] if gbps is not None else None
    return {"achieved_gflops": gflops, "achieved_gbps": gbps, "compute_share": compute,
            "bandwidth_share": bandwidth, "bound": bound(compute, bandwidth)}


def bound(compute: float | None, bandwidth: float | None) -> str | None:
    """'compute' or 'memory' when that roof's share is at least ROOF_SHARE (the larger one), 'overhead'
    when both are below OVERHEAD_SHARE, else 'mixed'; None when neither is known."""
    shares = {k: v for k, v in (("compute", compute), ("memory", bandwidth)) if v is not None}
    if not shares:
        return None
    top = max(shares, key=shares.get)
    if shares[top] >= ROOF_SHARE:
        return top
    return "overhead" if all(v < OVERHEAD_SHARE for v in shares.values()) else "mixed"
