"""Where a variant's wall time goes: named phases, timed as they happen.

A variant's `phases` in results.json: start-up (its process, imports, reading the scenario), data,
weights (trained or loaded), one entry per compression step, prepare (the backend's build: ONNX
export, session, compiler wrapper), accuracy (the pass over the test set, with the first calls
that build a compiled graph), agreement, warm-up (warm-up calls and calibration, graph builds at
each timed shape included), sampling (the timed samples themselves), harness, energy, load mode,
profile (where the time goes: FLOPs, the roofline, the backend profiler's operators), search (an
accuracy-aware search's trials, every phase inside them folded into it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    @contextmanager
    def folded(self, name: str) -> Iterator[None]:
        """The block's whole time under `name`; the phases timed inside it are not kept apart."""
        kept, start = dict(self.seconds), time.perf_counter()
        try:
            yield
        finally:
            self.seconds = kept
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def with_start_up(phases: dict[str, float] | None, wall_s: float) -> dict[str, float]:
    """`phases` with what the wall time has beyond them, as start-up, first (to 0.1 ms)."""
    phases = phases or {}
    return {name: round(seconds, 4) for name, seconds in
            {"start-up": max(wall_s - sum(phases.values()), 0.0), **phases}.items()}


def grouped(*phases: dict[str, float] | None) -> dict[str, float]:
    """Phases added up, the compression steps ("compress: NAME") as one "compress"."""
    totals: dict[str, float] = {}
    for one in phases:
        for name, seconds in (one or {}).items():
            key = "compress" if name.startswith("compress:") else name
            totals[key] = totals.get(key, 0.0) + seconds
    return totals


def overhead_line(variants: tuple) -> str | None:
    """'time: 264.1 s in variants; sampling 110.2 s (42 %), warm-up ...': the run's phases added up,
    largest first; None when no variant recorded any."""
    totals = grouped(*(v.phases for v in variants))
    wall = sum(v.seconds or 0.0 for v in variants)
    if not totals or wall <= 0:
        return None
    parts = [f"{name} {seconds:.1f} s ({seconds / wall:.0%})" for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])]
    return f"time: {wall:.1f} s in variants; " + ", ".join(parts)
