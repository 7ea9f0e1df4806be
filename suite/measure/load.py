"""Load modes after MLPerf LoadGen: offline (every sample available at once: the highest
throughput over batch sizes) and server (queries arriving as a Poisson process: the highest
rate whose p99 latency, queueing included, meets a bound). Single stream is the plain latency
measurement of suite.measure.timing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from suite.measure.stats import p99_claim, spread_ms

SPIN_S = 0.001  # sleep until this close to an arrival, then spin: sleep overshoots by ~0.1 ms


def offline_summary(rows: list[tuple[int, tuple[float, ...]]]) -> dict:
    """Throughput per batch size from the total time of its samples (all the work over all the
    time, as LoadGen's offline mode counts it), and the best batch size."""
    per_batch = [{"batch_size": batch, "samples_per_s": batch * len(samples_ms) / (sum(samples_ms) / 1e3)}
                 for batch, samples_ms in rows]
    best = max(per_batch, key=lambda row: row["samples_per_s"])
    return {"mode": "offline", "best_batch_size": best["batch_size"], "samples_per_s": best["samples_per_s"],
            "by_batch_size": per_batch}


@dataclass(frozen=True)
class Trial:
    rate_qps: float
    queries: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p99_bound_ms: float | None  # None: too few queries for a 99 %-confidence p99 claim
    met: bool


def poisson_run(call: Callable[[], Any], sync: Callable[[], None], rate_qps: float, min_queries: int,
                min_time_s: float, seed: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Serve queries arriving at exponential intervals, one at a time in arrival order; return each
    query's latency in seconds from its arrival (so time spent queued counts) to its result."""
    rng = np.random.default_rng(seed)
    latencies: list[float] = []
    start = clock()
    arrival = start
    while len(latencies) < min_queries or clock() - start < min_time_s:
        arrival += rng.exponential(1.0 / rate_qps)
        wait_until(arrival, clock)
        call()
        sync()
        latencies.append(clock() - arrival)
    return latencies


def wait_until(moment: float, clock: Callable[[], float]) -> None:
    remaining = moment - clock()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while clock() < moment:
        pass


def trial(run_at: Callable[[float], list[float]], rate_qps: float, bound_ms: float) -> Trial:
    start = time.perf_counter()
    spread = spread_ms(np.asarray(run_at(rate_qps)) * 1e3)
    return Trial(rate_qps=rate_qps, queries=spread["n"], seconds=time.perf_counter() - start, p50_ms=spread["p50_ms"],
                 p99_ms=spread["p99_ms"], p99_bound_ms=spread["p99_bound_ms"], met=p99_claim(spread) <= bound_ms)


# A trial that misses the bound at this share of one server's capacity (rate x service time) or
# less ends the search: queueing adds little there, so a lower rate would miss it too, and each
# halving of the rate doubles the next trial's time (a bound no load meets once ran until the
# variant's time-out, losing what it had measured).
LIGHT_LOAD = 0.1


def bisect_rate(trial: Callable[[float], dict], high: float, steps: int, light_rate: float,
                affordable: Callable[[float], bool] = lambda rate: True, grow: bool = False) -> tuple[list[dict], str]:
    """The trials of a bisection of the arrival rate between 0 and `high` for the highest whose
    trial (`trial(rate)`, a dict with "met") meets its bounds: halve toward the last rate that met
    them, up toward the last that missed; with `grow`, `high` doubles while no trial has missed
    (a batching server may take more than a bracket guessed beforehand; sound only where a trial
    lasts long enough for a queue to build at a rate the server cannot sustain). Stops after
    `steps` trials, where a trial at `light_rate` or less misses (queueing adds little below:
    lower rates would miss too), or before a trial that is not `affordable` (each halving doubles
    a fixed count of arrivals' time). Returns the trials and why it stopped."""
    low, trials = 0.0, []
    for _ in range(steps):
        rate = (low + high) / 2
        if not affordable(rate):
            return trials, f"the next trial, at {rate:.3g}/s, would not fit the search's time"
        trials.append(trial(rate))
        low, high = (rate, high) if trials[-1]["met"] else (low, rate)
        if grow and all(t["met"] for t in trials):
            high *= 2
        if not trials[-1]["met"] and rate <= light_rate:
            return trials, f"missed at {rate:.3g}/s, a light load: lower rates would miss too"
    if trials and all(t["met"] for t in trials):
        return trials, f"{steps} trials (rate_steps), each met the bounds: the highest is a floor, not the limit"
    return trials, f"{steps} trials (rate_steps)"


def best_trial(trials: list[dict], rate_key: str) -> dict | None:
    return max((t for t in trials if t["met"]), key=lambda t: t[rate_key], default=None)


def search_rate(run_at: Callable[[float], list[float]], service_s: float, bound_ms: float, steps: int) -> dict:
    """Bisect the arrival rate between 0 and the rate one server can at best sustain
    (1 / service time) for the highest that meets the p99 bound; stop where a light load misses it."""
    trials, stopped = bisect_rate(lambda rate: trial(run_at, rate, bound_ms).__dict__, 1.0 / service_s, steps,
                                  LIGHT_LOAD / service_s)
    best = best_trial(trials, "rate_qps")
    return {"mode": "server", "latency_bound_ms": bound_ms, "percentile": 99,
            "max_rate_qps": best["rate_qps"] if best else None, "trials": trials, "stopped": stopped}


# Requests in one trial at most, however long its min_s asks it to last (their answers are kept).
MAX_TRIAL_REQUESTS = 20_000


def trial_requests(rate: float, requests: int, min_s: float) -> int:
    """The requests of a trial at `rate` per second: `requests`, or more so that their arrivals
    span `min_s` seconds (MLPerf's min_duration: a few requests at a high rate end before a queue
    builds, and meet any bound), at most MAX_TRIAL_REQUESTS for the time alone."""
    return max(requests, min(math.ceil(rate * min_s), MAX_TRIAL_REQUESTS))


def poisson_requests(serve: Callable[[], tuple[float, list[float]]], rate_qps: float, requests: int, seed: int,
                     clock: Callable[[], float] = time.perf_counter) -> list[tuple[float, list[float]]]:
    """Decoder requests arriving at exponential intervals, served one at a time in arrival order
    (`serve` runs one and returns its prefill and step seconds): each request's time to first
    token from its arrival (time queued counts) and its time per output token for every step."""
    rng = np.random.default_rng(seed)
    served = []
    arrival = clock()
    for _ in range(requests):
        arrival += rng.exponential(1.0 / rate_qps)
        wait_until(arrival, clock)
        started = clock()
        prefill, steps = serve()
        served.append((started - arrival + prefill, steps))
    return served


def search_request_rate(run_at: Callable[[float], list[tuple[float, list[float]]]], service_s: float,
                        ttft_bound_ms: float, tpot_bound_ms: float, steps: int) -> dict:
    """Bisect the arrival rate (0 to 1 / request time) for the highest whose p99 time to first
    token and p99 time per output token both meet their bounds (MLPerf's LLM server rule)."""
    def request_trial(rate: float) -> dict:
        start = time.perf_counter()
        served = run_at(rate)
        ttft = np.array([t for t, _ in served]) * 1e3
        tpot = np.array([s for _, step in served for s in step]) * 1e3
        figures = {}
        for name, values, bound in (("ttft", ttft, ttft_bound_ms), ("tpot", tpot, tpot_bound_ms)):
            spread = spread_ms(values)
            figures[name] = {**spread, "met": p99_claim(spread) <= bound}
        met = figures["ttft"]["met"] and figures["tpot"]["met"]
        return {"rate_qps": rate, "requests": len(served), "seconds": time.perf_counter() - start,
                **figures, "met": met, "p99_bound_ms": figures["ttft"]["p99_bound_ms"]}

    trials, stopped = bisect_rate(request_trial, 1.0 / service_s, steps, LIGHT_LOAD / service_s)
    best = best_trial(trials, "rate_qps")
    return {"mode": "server", "ttft_bound_ms": ttft_bound_ms, "tpot_bound_ms": tpot_bound_ms, "percentile": 99,
            "max_rate_qps": best["rate_qps"] if best else None, "trials": trials, "stopped": stopped}
