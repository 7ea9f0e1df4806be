"""Runs made up for the report tests: known figures, hostile names, every section filled."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from suite.measure.stats import summarize
from suite.results import LatencyResult, RunResult, ThroughputResult, VariantResult

HOSTILE = "<script>alert(1)</script>"


def latency(batch_size: int, samples_ms, seq_len: int | None = None) -> LatencyResult:
    stats = asdict(summarize(samples_ms))
    return LatencyResult(batch_size=batch_size, samples_ms=tuple(float(s) for s in samples_ms), seq_len=seq_len,
                         **{**stats, "ci95_p50_ms": tuple(stats["ci95_p50_ms"])})


def variant(name: str, base_ms: float, accuracy: float | None, size_kib: float, **fields) -> VariantResult:
    """Timed at batch 1 and 8 from lognormal samples around `base_ms` (per call), seeded by the name."""
    rng = np.random.default_rng(sum(map(ord, name)))
    rows = tuple(latency(b, base_ms * b ** 0.5 * rng.lognormal(0, 0.05, 200)) for b in (1, 8))
    rates = tuple(ThroughputResult(r.batch_size, r.batch_size * 1e3 / r.p50_ms) for r in rows)
    return VariantResult(name=name, model="mlp", backend=fields.pop("backend", "eager"), accuracy=accuracy,
                         agreement=1.0, agreement_with="fp32", size_bytes=int(size_kib * 1024), params=1000,
                         peak_rss_bytes=2**28, latency=rows, throughput=rates, **fields)


SERVER_LOAD = {"mode": "server", "latency_bound_ms": 5.0, "percentile": 99, "max_rate_qps": 150.0, "trials": [
    {"rate_qps": 200.0, "queries": 700, "seconds": 3.5, "p50_ms": 3.0, "p99_ms": 9.0, "p99_bound_ms": 9.5, "met": False},
    {"rate_qps": 100.0, "queries": 700, "seconds": 7.0, "p50_ms": 1.5, "p99_ms": 3.0, "p99_bound_ms": 3.2, "met": True},
    {"rate_qps": 150.0, "queries": 700, "seconds": 4.7, "p50_ms": 2.0, "p99_ms": 4.5, "p99_bound_ms": 4.8, "met": True}]}

LAYERS = [{"layer": "fc1", "type": "Linear", "precision": "int8", "weights": 800, "sparsity": 0.5},
          {"layer": HOSTILE, "type": "Linear", "precision": "float32", "weights": 200, "sparsity": 0.0}]
RECORD = {"method": "int8_dynamic", "params": {}, "before": {"size_bytes": 4096, "weights": 1000, "sparsity": 0.0},
          "after": {"size_bytes": 1024, "weights": 1000, "sparsity": 0.4}, "layers": LAYERS}


def energy(joules_per_inference: float) -> dict:
    return {"meter": "RAPL via powercap (package-0)", "idle_power_w": 10.0, "idle_baseline_s": 1.0,
            "rows": [{"batch_size": 1, "seq_len": None, "window_s": 1.0, "calls": 100, "mean_power_w": 12.0,
                      "net_power_w": 2.0, "joules_per_call": joules_per_inference,
                      "joules_per_inference": joules_per_inference}]}


def rich_run(created: str = "2026-11-23T00:00:00+00:00", slower: float = 1.0) -> RunResult:
    """Four variants: fp32 (dominated by int8 on latency), int8 and a hostile name (on the front), and
    one failed; server mode and energy on some. `slower` scales every latency."""
    variants = (
        variant("fp32", 2.0 * slower, 0.93, 400, energy=energy(0.02)),
        variant("int8", 1.0 * slower, 0.94, 100, energy=energy(0.01), compress=({"method": "int8_dynamic"},),
                compress_records=(RECORD,), backend="onnxruntime", load=SERVER_LOAD,
                warnings=("b=1: unstable: coefficient of variation 12% is above 10%",)),
        variant(HOSTILE, 3.0 * slower, 0.97, 300, warnings=(f"note {HOSTILE}",)),
        VariantResult(name="gone", model="mlp", backend="eager", status="failed", error=HOSTILE,
                      error_type="Crash"),
    )
    selection = {"max_accuracy_drop": 0.02, "by": "p50_ms", "batch_size": 1, "seq_len": None,
                 "recommended": "int8", "within": [{"variant": "int8", "accuracy_drop": 0.01, "p50_ms": 1.0}],
                 "broke": [], "not_judged": []}
    return RunResult(suite_version="0.1.0", created=created, scenario={"name": HOSTILE, "description": HOSTILE},
                     environment={"cpu": HOSTILE, "cores": 2, "git_commit": "abcdef1234"}, variants=variants,
                     selection=selection)
