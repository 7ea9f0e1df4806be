"""Is a candidate slower than a base? Two designs, both on raw latency samples:

- independent: two sets of samples taken apart (a stored baseline, or two runs). The ratio of
  the candidate's percentile to the base's, a bootstrap interval of that ratio (each set
  resampled on its own), and the Mann-Whitney U test of "the candidate's latencies are larger".
- paired: rounds in which base and candidate were timed one right after the other (A B A B ...).
  Each round gives the ratio of the two blocks' medians, so drift of the machine between rounds
  cancels; the estimate is the median of the round ratios, its interval a bootstrap over rounds,
  and the test the Wilcoxon signed-rank test of the rounds' log ratios.

- processes (suite.measure.processes): one value per process on each side, Welch's t-interval of
  the ratio on the logs; what `suite run` uses wherever a shape was timed in several processes.

The one rule for "faster" or "slower", wherever suite says it (speed-up columns, the
recommendation and its ties, explain, compare, the gate): the 95 % interval of the ratio lies
wholly on that side of 1, and the one-sided test on that side agrees (p below ALPHA = 0.025, the
same level: for the t-interval the two are one condition). Otherwise the two are tied.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.025  # one-sided: the two-sided 95 % interval's
CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    ratio: float  # candidate / base: above 1 is slower
    ci_low: float
    ci_high: float
    p_slower: float  # one-sided p-value of "the candidate is slower"
    p_faster: float  # one-sided p-value of "the candidate is faster"
    n_base: int
    n_candidate: int
    design: str  # "independent" | "paired" | "processes"
    percentile: int = 50

    @property
    def p_value(self) -> float:
        """The one-sided p-value on the side the estimate falls."""
        return self.p_slower if self.ratio >= 1 else self.p_faster

    def verdict(self, alpha: float = ALPHA) -> str:
        if self.p_slower < alpha and self.ci_low > 1:
            return "slower"
        if self.p_faster < alpha and self.ci_high < 1:
            return "faster"
        return "no significant change"


def compare_independent(base: Sequence[float], candidate: Sequence[float], percentile: int = 50,
                        seed: int = 0) -> Comparison:
    """Ratio of the candidate's percentile to the base's, with a bootstrap interval; Mann-Whitney U."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(base, dtype=float), np.asarray(candidate, dtype=float)

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.percentile(y, percentile, axis=axis) / np.percentile(x, percentile, axis=axis)

    low, high = _bootstrap((a, b), ratio, seed, paired=False, fallback=float(ratio(a, b)))
    return Comparison(ratio=float(ratio(a, b)), ci_low=low, ci_high=high,
                      p_slower=float(mannwhitneyu(b, a, alternative="greater").pvalue),
                      p_faster=float(mannwhitneyu(b, a, alternative="less").pvalue),
                      n_base=a.size, n_candidate=b.size, design="independent", percentile=percentile)


def compare_paired(base_rounds: Sequence[Sequence[float]], candidate_rounds: Sequence[Sequence[float]],
                   percentile: int = 50, seed: int = 0) -> Comparison:
    """Each round's candidate percentile over its base percentile; Wilcoxon signed-rank on the logs."""
    from scipy.stats import wilcoxon

    if len(base_rounds) != len(candidate_rounds) or len(base_rounds) < 2:
        raise ValueError("paired comparison needs the same number of rounds on both sides, at least 2")
    logs = np.log([np.percentile(c, percentile) / np.percentile(b, percentile)
                   for b, c in zip(base_rounds, candidate_rounds, strict=False)])
    estimate = float(np.exp(np.median(logs)))
    low, high = _bootstrap((logs,), lambda x, axis=-1: np.median(x, axis=axis), seed, paired=True,
                           fallback=float(np.median(logs)))
    nonzero = logs[logs != 0]
    p_slower = p_faster = 1.0
    if nonzero.size:
        p_slower = float(wilcoxon(nonzero, alternative="greater").pvalue)
        p_faster = float(wilcoxon(nonzero, alternative="less").pvalue)
    return Comparison(ratio=estimate, ci_low=float(np.exp(low)), ci_high=float(np.exp(high)), p_slower=p_slower,
                      p_faster=p_faster, n_base=sum(len(r) for r in base_rounds),
                      n_candidate=sum(len(r) for r in candidate_rounds), design="paired", percentile=percentile)


def _bootstrap(samples: tuple, statistic, seed: int, paired: bool, fallback: float) -> tuple[float, float]:
    """Percentile-bootstrap interval (scipy); the point itself when the samples cannot vary (all
    constant, or a side of one sample)."""
    from scipy.stats import bootstrap

    if all(np.ptp(s) == 0 for s in samples) or any(np.size(s) < 2 for s in samples):  # nothing to resample
        return fallback, fallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap(samples, statistic, paired=paired, vectorized=True, confidence_level=CONFIDENCE,
                           n_resamples=RESAMPLES, batch=200, method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
