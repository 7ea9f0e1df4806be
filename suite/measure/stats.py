"""Statistics of raw latency samples: percentiles, spread, a bootstrap CI of the median,
and the sample-size rule behind every percentile claim."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

PERCENTILES = (50, 90, 95, 99)
# Unstable samples: the spread the median sees (MAD-based) above HIGH_CV, or a p90 more than
# HIGH_TAIL above the median (a slow mode, not a few interruptions). Not the coefficient of
# variation: a handful of far outliers (the VM's interruptions, on almost every shape here)
# drive it over 10 % while the median and p90 stay put.
HIGH_CV = 0.10
HIGH_TAIL = 0.50


@dataclass(frozen=True)
class LatencyStats:
    n: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    ci95_p50_ms: tuple[float, float]
    robust_cv: float  # 1.4826 * MAD / median: the spread the median sees, insensitive to outliers
    outliers: int  # samples above Q3 + 3 IQR (Tukey's far-out fence)
    # Upper bounds on the true p90 / p99 at 99 % confidence (LoadGen's early-stopping estimate);
    # None when there are too few samples to claim that percentile at all.
    p90_bound_ms: float | None = None
    p99_bound_ms: float | None = None


def summarize(samples_ms, seed: int = 0) -> LatencyStats:
    values = np.asarray(samples_ms, dtype=float)
    if values.size == 0:
        raise ValueError("no samples to summarize")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    q1, q3 = np.percentile(values, (25, 75))
    mad = float(np.median(np.abs(values - p50)))
    return LatencyStats(
        n=int(values.size), p50_ms=p50, p90_ms=p90, p95_ms=p95, p99_ms=p99,
        mean_ms=mean, std_ms=std, cv=std / mean if mean > 0 else 0.0,
        ci95_p50_ms=median_ci(values, 0.95, seed),
        robust_cv=1.4826 * mad / p50 if p50 > 0 else 0.0,
        outliers=int(np.sum(values > q3 + 3 * (q3 - q1))),
        p90_bound_ms=percentile_bound(values, 0.90), p99_bound_ms=percentile_bound(values, 0.99),
    )


def median_ci(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    if values.size < 2 or np.all(values == values[0]):
        return float(np.median(values)), float(np.median(values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((values,), np.median, confidence_level=confidence, n_resamples=2000,
                           method="percentile", random_state=np.random.default_rng(seed))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


@cache
def min_samples_for_percentile(q: float, confidence: float = 0.99, tolerance: int = 1) -> int:
    """Fewest samples for which the (tolerance+1)-th largest bounds the q-quantile from above
    with the given confidence: the smallest n with P(Binomial(n, 1-q) <= tolerance) <= 1-confidence.

    With tolerance 1 this is MLPerf LoadGen's early-stopping minimum (64 for p90 and 662 for
    p99 at 99 % confidence).
    """
    from scipy.stats import binom

    if not 0.0 < q < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("q and confidence must lie strictly between 0 and 1")
    n = tolerance + 1
    while True:
        candidates = np.arange(n, 2 * n + 1)
        ok = binom.cdf(tolerance, candidates, 1.0 - q) <= 1.0 - confidence
        if ok.any():
            return int(candidates[np.argmax(ok)])
        n = 2 * n + 1


def spread_ms(values_ms) -> dict | None:
    """A load's figures of one metric, in ms: count, mean, p50, p90, p99, and the 99 %-confidence
    upper bound of p99 (None where there are too few samples for one); None without samples."""
    ms = np.asarray(values_ms, dtype=float)
    if not ms.size:
        return None
    return {"n": int(ms.size), "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "p99_bound_ms": percentile_bound(ms, 0.99)}


def p99_claim(spread: dict) -> float:
    """What a spread's p99 is judged by: its 99 %-confidence bound where there is one, else p99."""
    return spread["p99_bound_ms"] if spread["p99_bound_ms"] is not None else spread["p99_ms"]


def percentile_bound(values, q: float, confidence: float = 0.99, tolerance: int = 1) -> float | None:
    """An upper bound on the true q-quantile that holds with the given confidence, from the
    order statistics: the sample with t samples above it, for the largest t such that
    P(Binomial(n, 1-q) <= t) <= 1-confidence (if the quantile were higher, more than t samples
    would have exceeded it). None when even t = `tolerance` fails: too few samples for a claim."""
    from scipy.stats import binom

    ordered = np.sort(np.asarray(values, dtype=float))
    n = ordered.size
    allowed = np.nonzero(binom.cdf(np.arange(n), n, 1.0 - q) <= 1.0 - confidence)[0]
    if allowed.size == 0 or allowed[-1] < tolerance:
        return None
    return float(ordered[n - 1 - allowed[-1]])


def sample_warnings(stats: LatencyStats, confidence: float = 0.99) -> list[str]:
    """Plain-words warnings about what these samples cannot support."""
    out = count_warnings(stats, confidence)
    tail = stats.p90_ms / stats.p50_ms - 1 if stats.p50_ms > 0 else 0.0
    if stats.robust_cv > HIGH_CV or tail > HIGH_TAIL:
        out.append(f"unstable: spread around the median (MAD-based) {stats.robust_cv:.0%}, p90 {tail:.0%} above the "
                   f"median (limits {HIGH_CV:.0%} and {HIGH_TAIL:.0%}; coefficient of variation {stats.cv:.0%}, "
                   f"{stats.outliers} far outliers)")
    return out


def count_warnings(stats: LatencyStats, confidence: float = 0.99) -> list[str]:
    """The percentiles these samples are too few to bound, in words (empty: none)."""
    short = [(q, min_samples_for_percentile(q / 100, confidence)) for q in PERCENTILES[1:]]
    short = [(q, need) for q, need in short if stats.n < need]
    if not short:
        return []
    needs = ", ".join(f"p{q} needs >= {need}" for q, need in short)
    return [f"only {stats.n} samples: too few for a {confidence:.0%}-confidence claim on "
            f"{', '.join(f'p{q}' for q, _ in short)} ({needs})"]
