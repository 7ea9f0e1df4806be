"""Latency across processes: a variant's shape is timed in several processes (pyperf's worker
processes), and its interval of the median covers the differences between them.

Why: on this kind of machine two processes running the same model differ by more than either
one's samples can show (memory layout, thread placement, the VM's frequency): identical variants
measured one process each had medians 5-19 % apart while each process's bootstrap interval was
+/-0.2-0.6 % wide, so 23 of 24 such pairs looked different (FIELD-NOTES, "What a rerun of the
same variant does"). One process's samples describe that process, not the variant.

The interval (`process_interval`): a Student t-interval on the logs of the per-process medians.
Each process gives one median; its error from sampling within the process is part of the spread
of those medians, so the interval needs no separate within-process term. Logs, because the
between-process effects are multiplicative (a slower clock stretches every call alike); the
interval is exact when they are log-normal and close otherwise (tests/test_processes.py checks
its coverage on simulated processes: 95-97 % for 3, 5 and 10 processes). Not a bootstrap over
processes: with the 3 to 10 processes a run can afford, a percentile bootstrap of a mean of so
few values covers well under 95 % (88 % for 5 in the same simulation: it cannot see beyond the
values it has), and one process's own bootstrap interval covered 28 %.

Two rows are compared (`compare_rows`) by the ratio of their per-process values, with Welch's
t-interval on the logs; rows of a single process fall back to their samples (the within-process
design of suite.measure.significance), which cannot see between-process variance, and say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from suite.measure.significance import CONFIDENCE, Comparison, compare_independent
from suite.results import SHAPE_PREFIX

# A warning that a process's samples are too few for a percentile (suite.measure.stats.count_warnings):
# the pooled row's count replaces them.
COUNT = re.compile(SHAPE_PREFIX.pattern + r"only \d+ samples: too few")

STATISTICS = {"p50_ms": lambda x: float(np.percentile(x, 50)), "p90_ms": lambda x: float(np.percentile(x, 90)),
              "p95_ms": lambda x: float(np.percentile(x, 95)), "p99_ms": lambda x: float(np.percentile(x, 99)),
              "mean_ms": lambda x: float(np.mean(x))}


def process_interval(medians: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t-interval of the typical median, exp(mean(log m) +/- t * sd(log m) / sqrt(P)), from
    P >= 2 per-process medians; the value itself for one process or identical values."""
    from scipy.stats import t

    logs = np.log(np.asarray(medians, dtype=float))
    if logs.size < 2 or np.ptp(logs) == 0:
        centre = float(np.exp(logs.mean()))
        return centre, centre
    half = float(t.ppf((1 + confidence) / 2, logs.size - 1) * logs.std(ddof=1) / math.sqrt(logs.size))
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def compare_processes(base: Sequence[float], candidate: Sequence[float], confidence: float = CONFIDENCE,
                      percentile: int = 50) -> Comparison:
    """Candidate over base, from per-process values (at least 2 a side): the ratio of their
    geometric means, Welch's t-interval of it on the logs, and Welch's one-sided p-values."""
    from scipy.stats import t

    a, b = np.log(np.asarray(base, dtype=float)), np.log(np.asarray(candidate, dtype=float))
    if a.size < 2 or b.size < 2:
        raise ValueError("a comparison across processes needs at least 2 processes a side")
    diff = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        p = 0.0 if diff else 1.0
        return Comparison(math.exp(diff), math.exp(diff), math.exp(diff), p if diff > 0 else 1.0,
                          p if diff < 0 else 1.0, a.size, b.size, "processes", percentile)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = float(t.ppf((1 + confidence) / 2, df)) * se
    return Comparison(ratio=math.exp(diff), ci_low=math.exp(diff - half), ci_high=math.exp(diff + half),
                      p_slower=float(t.sf(diff / se, df)), p_faster=float(t.cdf(diff / se, df)),
                      n_base=a.size, n_candidate=b.size, design="processes", percentile=percentile)


def per_process(row: Any, statistic: str = "p50_ms") -> list[float]:
    """The row's `statistic` in each of its processes (its samples are kept in process order)."""
    counts = [p["n"] for p in row.processes] or [len(row.samples_ms)]
    if sum(counts) != len(row.samples_ms):  # a row whose samples do not add up: one process of all
        counts = [len(row.samples_ms)]
    samples, out, start = np.asarray(row.samples_ms, dtype=float), [], 0
    for n in counts:
        out.append(STATISTICS[statistic](samples[start:start + n]))
        start += n
    return out


def compare_rows(base: Any, candidate: Any, statistic: str = "p50_ms") -> Comparison:
    """The one comparison of two latency rows that suite uses to call one faster: across
    processes where both rows have several, else on their samples (design "independent")."""
    a, b = per_process(base, statistic), per_process(candidate, statistic)
    if len(a) >= 2 and len(b) >= 2:
        return compare_processes(a, b, percentile=percentile_of(statistic))
    return compare_independent(base.samples_ms, candidate.samples_ms, percentile_of(statistic))


def percentile_of(statistic: str) -> int:
    return {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99}.get(statistic, 50)


def process_entry(row: Any, round_: int) -> dict:
    """What a row's `processes` keeps of one process: round, samples, median, its own interval,
    the share of a core other processes used meanwhile (None: not recorded), and whether that
    made the machine busy (suite.measure.neighbours)."""
    from suite.measure import neighbours

    share = (row.others or {}).get("other_share_of_core")
    return {"round": round_, "n": len(row.samples_ms), "p50_ms": row.p50_ms, "ci95_p50_ms": list(row.ci95_p50_ms),
            "others_share_of_core": share, "busy": neighbours.busy(row.others)}


def pooled(rows: Sequence[Any]) -> Any:
    """One latency row from the same shape's rows of several processes (each of one or more
    processes already): samples in process order, percentiles of them all, the median's
    interval across processes, and the neighbours' activity summed over the windows. A process
    during which the machine was busy is left out where at least two quiet ones remain (the
    runner times busy variants again, suite.run.runner); else it stays, and `busy` says so."""
    from dataclasses import replace

    from suite.measure import stats

    rows = sorted(rows, key=lambda r: min((p["round"] for p in r.processes), default=1))
    quiet = [r for r in rows if not busy(r)]
    rows = quiet if len(quiet) >= 2 else rows  # a busy process is left out where two quiet ones remain
    first = rows[0]
    if len(rows) == 1:
        return first
    samples = tuple(x for r in rows for x in r.samples_ms)
    processes = tuple(p for r in rows for p in r.processes)
    summary = stats.summarize(samples).__dict__
    summary["ci95_p50_ms"] = process_interval([p["p50_ms"] for p in processes]) if len(processes) >= 2 else (
        summary["ci95_p50_ms"])
    stopped = next((r.stopped_by for r in rows if r.stopped_by != "enough"), "enough")
    return replace(first, **summary, samples_ms=samples, processes=processes, stopped_by=stopped,
                   loops=max(r.loops for r in rows), others=summed_others([r.others for r in rows]))


def left_out(warning: str, kept: dict[str, set[int]]) -> str:
    """A busy-machine warning of a process the pooled row left out, said as such."""
    match = SHAPE_PREFIX.match(warning)
    if not match or "the machine was busy" not in warning:
        return warning
    round_, shape = int(match.group("process") or 1), match.group("shape")
    if round_ in kept.get(shape, {round_}):
        return warning
    return f"process {round_}: {shape}: left out: the machine was busy while it was timed"


def busy(row: Any) -> bool:
    """Whether any process of the row was timed while the machine was busy."""
    return any(p.get("busy") for p in row.processes)


def summed_others(records: Sequence[dict | None]) -> dict | None:
    """The neighbours' activity over several timed windows: CPU seconds and windows summed, the
    highest load average."""
    kept = [r for r in records if r]
    if not kept:
        return None
    window = sum(r["window_s"] for r in kept)
    other = sum(r["other_cpu_s"] for r in kept)
    return {"window_s": round(window, 3), "other_cpu_s": round(other, 3),
            "other_share_of_core": round(other / max(window, 1e-9), 4),
            "load_avg_1m": max(r["load_avg_1m"] for r in kept), "cores": kept[0]["cores"]}


def merged(first: Any, later: Sequence[tuple[int, Any]]) -> Any:
    """A variant's result with its later processes' rows pooled in (`later`: (round, result) of
    each that ran): the latency rows, the throughput they give, the warnings (a failed process
    named with its reason), and the seconds they took, added to the phases by name."""
    from dataclasses import replace

    from suite.measure import stats

    if first.status != "ok" or not later:
        return first
    rows = {row.shape: [row] for row in first.latency}
    warnings = list(first.warnings)
    for round_, result in later:
        if result.status != "ok":
            warnings.append(f"process {round_} failed: {result.error}")
            continue
        for row in result.latency:
            rows.setdefault(row.shape, []).append(row)
        warnings += [f"process {round_}: {w}" for w in result.warnings]
    latency = tuple(pooled(rows[row.shape]) for row in first.latency)
    kept = {row.shape: {p["round"] for p in row.processes} for row in latency}
    warnings = [left_out(w, kept) for w in warnings if not COUNT.match(w)]  # each process's count: said once below
    warnings += [f"{row.shape}: {w}" for row in latency for w in stats.count_warnings(row)]
    was, now = {row.shape: row.p50_ms for row in first.latency}, {row.shape: row.p50_ms for row in latency}
    throughput = tuple(replace(t, samples_per_s=t.samples_per_s * was[t.shape] / now[t.shape]) if t.shape in was else t
                       for t in first.throughput)
    extra = sum(result.seconds or 0.0 for _, result in later)
    phases = None
    if first.phases is not None:
        phases = dict(first.phases)
        for _, result in later:
            for name, seconds in (result.phases or {}).items():
                phases[name] = round(phases.get(name, 0.0) + seconds, 4)
    return replace(first, latency=latency, throughput=throughput, warnings=tuple(dict.fromkeys(warnings)),
                   seconds=round((first.seconds or 0.0) + extra, 3) if first.seconds is not None else None,
                   phases=phases)


def speedup(reference: Any, row: Any) -> tuple[float, float, float, bool]:
    """How many times as fast `row` is as `reference` (their medians), the 95 % interval of that,
    and whether it is a difference at all by the one rule (else the two are tied)."""
    c = compare_rows(reference, row)
    return 1 / c.ratio, 1 / c.ci_high, 1 / c.ci_low, c.verdict() != "no significant change"


def speedup_text(reference: Any, row: Any) -> str:
    """'3.41x (3.12-3.70)', or '1.02x (0.95-1.09), tied' where the interval holds 1; marked not
    comparable where either side has a process timed while the machine was busy."""
    value, low, high, differs = speedup(reference, row)
    text = f"{value:.2f}x ({low:.2f}-{high:.2f})" + ("" if differs else ", tied")
    return text + (", not comparable: timed while the machine was busy" if busy(reference) or busy(row) else "")
