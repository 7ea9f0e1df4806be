"""Timing a callable: warm-up, an inner loop calibrated to the timer, raw samples kept.

Each sample is `loops` back-to-back calls between two synchronizations, divided by `loops`.
`loops` is 1 unless a single call is too short for the timer to measure well, so in the
usual case every sample is one call and percentiles are per-call latencies.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class TimingPlan:
    warmup_s: float = 0.5
    warmup_calls: int = 3  # at least this many, however long warmup_s is
    min_samples: int = 100
    max_samples: int = 5000
    min_time_s: float = 2.0
    max_time_s: float = 30.0
    min_sample_s: float | None = None  # None: derived from the timer's own cost


@dataclass(frozen=True)
class Timing:
    samples_s: tuple[float, ...]  # seconds per call, one entry per sample
    loops: int  # calls per sample
    warmup_calls: int
    min_sample_s: float
    stopped_by: str  # "enough" | "max_time_s" | "max_samples"


class CudaEventClock:
    """A clock for `measure` on CUDA: each read records an event on torch's current stream, and
    the difference of two reads is the device time between them, in seconds. Backends that run
    on CUDA queue their work on that stream (ONNX Runtime is given it), so one timer serves all."""

    def __call__(self) -> _Event:
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return _Event(event)


@dataclass(frozen=True)
class _Event:
    event: object

    def __sub__(self, earlier: _Event) -> float:
        self.event.synchronize()
        return earlier.event.elapsed_time(self.event) / 1e3  # elapsed_time is in milliseconds


def timer_overhead(clock: Clock = time.perf_counter, reads: int = 2001) -> float:
    """The median cost of one clock read, in seconds."""
    stamps = [clock() for _ in range(reads)]
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def shortest_sample(clock: Clock = time.perf_counter) -> float:
    """A sample this long keeps the clock's own cost and resolution under 1 % of it."""
    resolution = time.get_clock_info("perf_counter").resolution if clock is time.perf_counter else 0.0
    return max(100 * timer_overhead(clock), 1000 * resolution, 1e-6)


def harness_cost(sync: Callable[[], None], clock: Clock = time.perf_counter, calls: int = 1000) -> float:
    """What the harness adds to every sample: the median time of a call that does nothing,
    timed through the same path (synchronization, clock, closure) as the model's calls."""
    def nothing() -> None:
        return None

    return statistics.median(one_sample(nothing, sync, 1, clock) for _ in range(calls))


def one_sample(call: Callable[[], object], sync: Callable[[], None], loops: int, clock: Clock) -> float:
    """Seconds per call over `loops` calls, synchronized on both sides."""
    sync()
    start = clock()
    for _ in range(loops):
        call()
    sync()
    return (clock() - start) / loops


def warm_up(call, sync, seconds: float, clock: Clock, min_calls: int = 3) -> tuple[int, float]:
    """Run until both `seconds` and `min_calls` are reached; return the calls and the last call's time."""
    calls, start, last = 0, clock(), 0.0
    while calls < min_calls or clock() - start < seconds:
        last = one_sample(call, sync, 1, clock)
        calls += 1
    return calls, last


def calibrate(call, sync, min_sample_s: float, clock: Clock, max_loops: int = 1_000_000,
              first: float | None = None) -> int:
    """The fewest calls per sample that make a sample last at least `min_sample_s`.

    `first`, the time of one call already measured (the last warm-up call), saves a call.
    """
    loops = 1
    while loops < max_loops:
        per_call = first if first is not None and loops == 1 else one_sample(call, sync, loops, clock)
        if per_call * loops >= min_sample_s:
            return loops
        wanted = math.ceil(1.2 * min_sample_s / max(per_call, 1e-12))
        loops = min(max_loops, max(2 * loops, wanted))
    return loops


def measure(call, sync, plan: TimingPlan, clock: Clock = time.perf_counter, on_sample=None) -> Timing:
    """Warm up, calibrate, then sample until enough samples and time, or a cap, is reached."""
    warmup_calls, last = warm_up(call, sync, plan.warmup_s, clock, max(1, plan.warmup_calls))
    min_sample_s = plan.min_sample_s or shortest_sample(clock)
    loops = calibrate(call, sync, min_sample_s, clock, first=last)
    samples: list[float] = []
    start = clock()
    while True:
        samples.append(one_sample(call, sync, loops, clock))
        if on_sample:
            on_sample(len(samples))
        stop = _stop_reason(len(samples), clock() - start, plan)
        if stop:
            return Timing(tuple(samples), loops, warmup_calls, min_sample_s, stop)


def _stop_reason(n: int, elapsed: float, plan: TimingPlan) -> str | None:
    if n >= plan.min_samples and elapsed >= plan.min_time_s:
        return "enough"
    if n >= plan.max_samples:
        return "max_samples"
    if elapsed >= plan.max_time_s:
        return "max_time_s"
    return None
