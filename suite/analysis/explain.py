"""`suite explain RUN VARIANT [--against OTHER]`: where a variant's time goes, read from its
results (measure.profile): at each timed shape the work of a call and where its median stands
against the machine's roofs, the backend profiler's top operators, the operator families against
its reference's (the variant it was compared with, or --against), its speed-up against that
reference and against the fastest uncompressed variant of the same model and data; and, where it
is not faster than its reference, the reasons the figures show. Every sentence is made from
measured figures; where they show no reason, it says so.
"""

from __future__ import annotations

from suite.errors import SuiteError
from suite.measure import ops
from suite.measure.processes import speedup, speedup_text
from suite.records import ShapeProfile
from suite.results import LatencyResult, RunResult, VariantResult

# An operator family whose time is above this share of the reference's is not faster (profiler
# tables carry no interval; whole calls are judged by the one rule, suite.measure.processes).
NOT_FASTER = 0.95
OUTSIDE = 0.30  # a share of wall time outside operators worth naming
CONVERSIONS = 0.10  # a share of operator time in conversions worth naming
FLOAT_NAMES = ("f32", "fp32", "float", "float32", "bf16", "f16", "fp16")


def find(run: RunResult, name: str, what: str = "variant") -> VariantResult:
    names = [v.name for v in run.variants]
    if name not in names:
        from suite.registry import did_you_mean

        raise SuiteError(f"explain: {what} {name!r} is not in the run{did_you_mean(name, names)}")
    return run.variants[names.index(name)]


def explain(run: RunResult, name: str, against: str | None = None) -> list[str]:
    """The lines `suite explain` prints."""
    variant = find(run, name)
    reference = find(run, against, "--against") if against else reference_for(run, variant)
    if variant.status != "ok":
        return [f"{name}: {variant.status}: {variant.error}"]
    if variant.profile is None:
        return [f"{name}: no profile in these results (measure.profile was off, or a --quick run): run it again "
                "without --quick"]
    lines = [f"{name} ({variant.backend}{steps(variant)}); FLOPs counted on {variant.profile.flops_counted_on}; "
             f"weights read per call {size(variant.profile.weight_bytes)}; limits: "
             f"{variant.profile.limits.get('matmul_gflops')} GFLOP/s, {variant.profile.limits.get('read_bandwidth_gbps')} GB/s "
             f"({variant.profile.limits.get('how', 'measured')})"]
    if variant.profile.ops_reason:
        lines.append(f"  no operator table: {variant.profile.ops_reason}")
    best = fastest_uncompressed(run, variant)
    for shape in variant.profile.shapes:
        lines += shape_lines(shape)
        lines += comparison_lines(run, variant, reference, best, shape)
    return lines


def reference_for(run: RunResult, variant: VariantResult) -> VariantResult | None:
    """What a variant is set against: the uncompressed variant of its model and data on the same
    backend (so the difference is the compression's, and the two operator tables come from one
    profiler), else the variant its agreement was measured against."""
    same = [v for v in uncompressed_peers(run, variant) if v.name != variant.name and v.backend == variant.backend]
    if variant.compress and same:
        return same[0]
    names = [v.name for v in run.variants]
    agreed = variant.agreement_with
    return run.variants[names.index(agreed)] if agreed in names and agreed != variant.name else None


def shape_lines(shape: ShapeProfile) -> list[str]:
    work = (f"{flop_text(shape.flops)}, {shape.achieved_gflops:,.3g} GFLOP/s = {shape.compute_share:.1%} of the "
            "compute roof" if shape.flops else "FLOPs not counted")
    bandwidth = (f"{shape.achieved_gbps:,.3g} GB/s = {shape.bandwidth_share:.1%} of the bandwidth roof"
                 if shape.achieved_gbps is not None else "bytes not known")
    lines = [f"{shape.shape}: p50 {shape.p50_ms:.4g} ms; {work}; {bandwidth}; bound: {shape.bound or 'unknown'}"]
    if (shape.compute_share or 0) > 1 or (shape.bandwidth_share or 0) > 1:
        lines.append("  above a measured limit: the probes (a float32 matmul, a float32 sum) are lower bounds, and "
                     "int8 or bf16 kernels compute faster than the float32 product the compute probe times")
    if shape.ops:
        t = shape.ops
        outside = f", {t.outside_share:.0%} of the timed median outside them" if t.outside_share is not None else ""
        lines.append(f"  {t.profiler} profiler, {t.calls} calls: {t.ops_ms:.4g} ms per call in operators{outside} "
                     f"({t.wall_ms:.4g} ms per call with the profiler on)")
        for row in t.ops[:8]:
            precision = f" [{row.precision}]" if row.precision else ""
            lines.append(f"    {row.share:6.1%}  {row.ms:9.4g} ms  {row.per_call:6.3g}x  {row.op}{precision}")
    return lines


def comparison_lines(run: RunResult, variant: VariantResult, reference: VariantResult | None,
                     best: VariantResult | None, shape: ShapeProfile) -> list[str]:
    lines = []
    for label, other in (("its reference", reference), ("the fastest uncompressed variant", best)):
        theirs = row_of(other, shape.shape) if other is not None and other.name != variant.name else None
        mine = row_of(variant, shape.shape)
        if theirs and mine:
            lines.append(f"  against {label} {other.name}: {speedup_text(theirs, mine)} as fast "
                         f"({theirs.p50_ms:.4g} ms there)")
    if reference is None or reference.profile is None:
        return lines
    mine = shape.ops
    ref_shape = next((s for s in reference.profile.shapes if s.shape == shape.shape), None)
    if mine is not None and ref_shape is not None and ref_shape.ops is not None and mine.profiler != ref_shape.ops.profiler:
        lines.append(f"  operators not set side by side: {mine.profiler}'s profiler against {ref_shape.ops.profiler}'s "
                     "(each adds its own cost to what it times); --against an uncompressed variant on "
                     f"{variant.backend} compares like with like")
        ref_shape = None
    if mine is not None and ref_shape is not None and ref_shape.ops is not None:
        found = ops.diff(table_dict(mine), table_dict(ref_shape.ops))
        for fam, figures in found["families"].items():
            change = f"{figures['speedup']:.2f}x as fast" if figures["speedup"] else "added" if not figures[
                "reference_ms"] else "gone"
            lines.append(f"  {family_text(fam)}: {figures['reference_ms']:.4g} -> {figures['ms']:.4g} ms ({change})")
    theirs, mine = row_of(reference, shape.shape), row_of(variant, shape.shape)
    if theirs and mine and not faster(theirs, mine):
        found_reasons = reasons(variant, reference, shape, ref_shape)
        lines.append(f"  why not faster than {reference.name}: " + ("; ".join(found_reasons) if found_reasons else
                                                                   "the figures here show no reason"))
    return lines


def reasons(variant: VariantResult, reference: VariantResult, shape: ShapeProfile,
            ref_shape: ShapeProfile | None) -> list[str]:
    """Why `variant` is not faster than `reference` at `shape`, from the measured figures only."""
    found = []
    if shape.bound == "overhead":
        found.append(f"it reaches {shape.compute_share or 0:.1%} of the compute roof and "
                     f"{shape.bandwidth_share or 0:.1%} of the bandwidth roof: bound by overhead, not by the hardware")
    table = shape.ops
    if table is not None and table.outside_share is not None and table.outside_share >= OUTSIDE:
        found.append(f"{table.outside_share:.0%} of its time is outside operators (dispatch, Python, copies)")
    if table is not None:
        converting = [row for row in table.ops if row.family == "conversion"]
        share = sum(row.share for row in converting)
        before = ref_shape.ops.by_family.get("conversion", 0.0) if ref_shape and ref_shape.ops else 0.0
        if share >= CONVERSIONS and table.by_family.get("conversion", 0.0) > before:
            names = ", ".join(dict.fromkeys(row.op for row in converting[:3]))
            found.append(f"{share:.0%} of its operator time is in conversions ({names})")
        compute = [row for row in table.ops if row.family in ("convolution", "matrix product")]
        floats = sum(row.share for row in compute if (row.precision or "").lower() in FLOAT_NAMES)
        if variant.compress and floats >= CONVERSIONS and any(row.precision for row in compute):
            found.append(f"{floats:.0%} of its operator time is convolutions and matrix products still in float")
        if ref_shape is not None and ref_shape.ops is not None:
            found += [f"its {family_text(fam)} took {figures['ms'] / figures['reference_ms']:.2f}x the reference's time"
                      for fam, figures in ops.diff(table_dict(table), table_dict(ref_shape.ops))["families"].items()
                      if figures["speedup"] and figures["speedup"] < NOT_FASTER and figures["ms"] > 0.2 * table.ops_ms]
    larger = [s for s in (variant.profile.shapes if variant.profile else ())
              if s.batch_size > shape.batch_size and s.seq_len == shape.seq_len and s.metric == shape.metric]
    for bigger in sorted(larger, key=lambda s: -s.batch_size)[:1]:
        theirs, mine = row_of(reference, bigger.shape), row_of(variant, bigger.shape)
        if theirs and mine and faster(theirs, mine):
            found.append(f"at {bigger.shape} it is {speedup_text(theirs, mine)} as fast: {shape.shape} is too "
                         "small a batch for its gain")
    return found


def flop_text(flops: int) -> str:
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if flops >= scale:
            return f"{flops / scale:,.3g} {unit}"
    return f"{flops} FLOP"


def family_text(family: str) -> str:
    return {"other": "other operators", "convolution": "convolutions", "matrix product": "matrix products",
            "conversion": "conversions"}.get(family, family)


def table_dict(table) -> dict:
    return {"by_family": table.by_family, "ops": [{"op": r.op, "ms": r.ms, "share": r.share} for r in table.ops]}


def row_of(v: VariantResult | None, shape: str) -> LatencyResult | None:
    return next((row for row in v.latency if row.shape == shape), None) if v is not None else None


def faster(reference: LatencyResult, row: LatencyResult) -> bool:
    """Whether `row` is faster than `reference` by the one rule (suite.measure.processes)."""
    value, _, _, differs = speedup(reference, row)
    return differs and value > 1


def p50_at(v: VariantResult | None, shape: str) -> float | None:
    return next((row.p50_ms for row in v.latency if row.shape == shape), None) if v is not None else None


def compressed(v: VariantResult) -> bool:
    """Whether a compression step or the backend itself (its "compressed_weights") changed the weights."""
    return bool(v.compress) or bool(v.backend_info.get("compressed_weights"))


def compression_steps(v: VariantResult) -> list[str]:
    """The compression steps' methods, then the backend's own weight compression."""
    own = v.backend_info.get("compressed_weights")
    return [str(step.get("method", "?")) for step in v.compress] + ([f"{v.backend} {own} weights"] if own else [])


def uncompressed_peers(run: RunResult, variant: VariantResult) -> list[VariantResult]:
    """The run's measured, uncompressed variants of the same model on the same data (any backend)."""
    return [v for v in run.variants if not compressed(v) and v.status == "ok" and v.model == variant.model
            and v.dataset == variant.dataset]


def fastest_uncompressed(run: RunResult, variant: VariantResult, shape: str | None = None) -> VariantResult | None:
    """The uncompressed variant of the same model and data (on any backend) with the lowest median
    at `shape` (default: the variant's first): the honest reference for a compressed one's gain."""
    same = uncompressed_peers(run, variant)
    shape = shape or (variant.latency[0].shape if variant.latency else None)
    timed = [(p50_at(v, shape), v) for v in same if p50_at(v, shape)]
    return min(timed, key=lambda pair: pair[0])[1] if timed else None


def steps(v: VariantResult) -> str:
    return (", " + " + ".join(compression_steps(v))) if compressed(v) else ", uncompressed"


def size(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 1024:,.1f} KiB"
