"""Measuring one prepared model: latency at every input shape, the harness's own cost per
timed call, energy where a hardware counter can be read, and the scenario's load mode.
The runner calls `measure_model` once per variant; this module knows no plugin by name."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from suite.backends.base import Backend
from suite.config.scenario import Measure
from suite.errors import SuiteError
from suite.measure import energy, load, neighbours, stats, timing
from suite.phases import Phases
from suite.results import LatencyResult, ThroughputResult, shape_label

HARNESS_CALLS = 1000


@dataclass(frozen=True)
class Context:
    bars: Any
    name: str  # the variant's, for progress bars
    source: str  # the scenario file, for messages
    seed: int
    phases: Any = field(default_factory=Phases)  # where the time goes: warm-up, sampling, harness, ...
    round: int = 1  # which of the variant's processes this is (suite.measure.processes)


@dataclass(frozen=True)
class Measured:
    latency: tuple[LatencyResult, ...]
    throughput: tuple[ThroughputResult, ...]
    notes: tuple[str, ...]
    harness_overhead_us: float
    energy: dict | None
    energy_reason: str | None
    load: dict | None

    def fields(self) -> dict:
        """Everything but the notes, as VariantResult fields."""
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


@dataclass(frozen=True)
class Shape:
    batch_size: int
    seq_len: int | None
    call: Callable[[], Any]  # the model on inputs of this shape already on the device
    host_call: Callable[[], Any]  # from host inputs to host outputs, copies included

    @property
    def label(self) -> str:
        return shape_label(self.batch_size, self.seq_len)


def measure_model(run_model: Any, backend: Backend, data: Any, measure: Measure, ctx: Context) -> Measured:
    device = backend.describe().get("device", "cpu")
    clock = timing.CudaEventClock() if device != "cpu" else time.perf_counter
    plan = timing_plan(measure)
    shapes = [shape_of(run_model, backend, data, b, s) for b, s in input_shapes(measure, data, ctx.source)]
    rows, notes = time_shapes(shapes, backend, measure, ctx)
    with ctx.phases("harness"):
        harness = timing.harness_cost(backend.synchronize, clock, HARNESS_CALLS)
    with ctx.phases("energy"):
        energy_result, energy_reason = measure_energy(shapes, backend.synchronize, device, measure)
    throughputs = tuple(ThroughputResult(r.batch_size, r.batch_size / (r.p50_ms / 1e3), r.seq_len) for r in rows)
    with ctx.phases("load mode"):
        loaded = load_result(measure, rows, shapes, backend.synchronize, plan, ctx)
    return Measured(latency=tuple(rows), throughput=throughputs, notes=tuple(notes + load_warnings(loaded)),
                    harness_overhead_us=harness * 1e6, energy=energy_result, energy_reason=energy_reason,
                    load=loaded)


def time_shapes(shapes: list[Shape], backend: Backend, measure: Measure, ctx: Context) -> tuple[list, list[str]]:
    """Each shape timed in this process (its share of the samples: `timing_plan`): the rows and
    what they cannot support."""
    device = backend.describe().get("device", "cpu")
    clock = timing.CudaEventClock() if device != "cpu" else time.perf_counter
    plan = timing_plan(measure)
    rows, notes = [], []
    for shape in shapes:
        row, row_notes = time_shape(shape, backend.synchronize, plan, clock, device != "cpu", ctx)
        rows.append(row)
        notes += row_notes
    return rows, notes


def outputs_on(run_model: Any, backend: Backend, inputs: Any, measure: Measure) -> Any:
    """The model's outputs on one split's inputs, in batches of measure.eval_batch_size (else the
    largest batch size timed): the accuracy pass of a variant (test split) and of a search's trial
    (validation split)."""
    from suite.measure import quality

    return quality.outputs(run_model, backend.place, backend.to_host, inputs,
                           measure.eval_batch_size or max(measure.batch_sizes))


def shape_of(run_model: Any, backend: Backend, data: Any, batch_size: int, seq_len: int | None) -> Shape:
    host_inputs = batch_of(data.test.x, batch_size, seq_len)
    inputs = backend.place(host_inputs)
    return Shape(batch_size, seq_len, lambda: run_model(inputs),
                 lambda: backend.to_host(run_model(backend.place(host_inputs))))


def time_shape(shape: Shape, sync: Callable[[], None], plan: timing.TimingPlan, clock: Any, on_device: bool,
               ctx: Context) -> tuple[LatencyResult, list[str]]:
    with ctx.bars.task(f"measuring {ctx.name} {shape.label}", total=plan.min_samples) as task:
        before = neighbours.snapshot()
        measured = timing.measure(shape.call, sync, plan, clock=clock, on_sample=lambda n: task.update(n))
        after = neighbours.snapshot()
    others = neighbours.others(before, after)
    sampled = sum(measured.samples_s) * measured.loops
    ctx.phases.add("sampling", sampled)
    ctx.phases.add("warm-up", max(after.wall_s - before.wall_s - sampled, 0.0))
    row, notes = latency_result(shape.batch_size, shape.seq_len, measured, round_=ctx.round, others=others)
    if neighbours.busy(others):
        notes.append(neighbours.warning(shape.label, others))
        ctx.bars.log(f"{ctx.name}: warning: {notes[-1]}")
    if on_device:  # the same model again, timed from host inputs to host outputs, copies included
        with ctx.bars.task(f"measuring {ctx.name} {shape.label} end to end", total=plan.min_samples) as task, \
                ctx.phases("end to end"):
            copied = timing.measure(shape.host_call, sync, plan, on_sample=lambda n: task.update(n))
        row = replace(row, timer="cuda_events", end_to_end=end_to_end(copied))
    return row, notes


def measure_energy(shapes: list[Shape], sync: Callable[[], None], device: str,
                   measure: Measure) -> tuple[dict | None, str | None]:
    """Energy per call and per inference at every shape, net of the idle baseline; or the reason
    there is none."""
    meter, reason = energy.meter_for(device)
    if meter is None:
        return None, reason
    idle_w = energy.idle_power(meter, measure.idle_baseline_s)
    rows = [{"batch_size": s.batch_size, "seq_len": s.seq_len,
             **energy.active_energy(s.call, sync, meter, measure.energy_window_s, idle_w, s.batch_size)}
            for s in shapes]
    return {"meter": meter.describe(), "idle_power_w": idle_w, "idle_baseline_s": measure.idle_baseline_s,
            "rows": rows}, None


def load_result(measure: Measure, rows: list[LatencyResult], shapes: list[Shape], sync: Callable[[], None],
                plan: timing.TimingPlan, ctx: Context) -> dict | None:
    if measure.mode == "offline":
        return load.offline_summary([(r.batch_size, r.samples_ms) for r in rows])
    if measure.mode != "server":
        return None
    row, shape = next((r, s) for r, s in zip(rows, shapes, strict=False) if r.batch_size == 1)  # Measure checks there is one
    queries = measure.server_queries or max(plan.min_samples, stats.min_samples_for_percentile(0.99))
    with ctx.bars.task(f"{ctx.name}: server mode, highest rate with p99 <= {measure.latency_bound_ms:g} ms",
                       total=measure.rate_steps) as task:
        steps = iter(range(measure.rate_steps))

        def run_at(rate: float) -> list[float]:
            task.update(next(steps), note=f"{rate:,.1f} queries/s")
            return load.poisson_run(shape.call, sync, rate, queries, plan.min_time_s, ctx.seed)

        return load.search_rate(run_at, row.p50_ms / 1e3, measure.latency_bound_ms, measure.rate_steps)


def load_warnings(loaded: dict | None) -> list[str]:
    short = [t for t in (loaded or {}).get("trials", ()) if t["p99_bound_ms"] is None]
    if not short:
        return []
    return [f"server mode: {len(short)} of {len(loaded['trials'])} trials had too few queries for a 99 %-confidence "
            f"p99 (needs >= {stats.min_samples_for_percentile(0.99)}): judged by the sample p99"]


def input_shapes(measure: Measure, data: Any, source: str) -> list[tuple[int, int | None]]:
    """(batch size, sequence length) pairs to time; the length is None unless `seq_lens` is set."""
    if measure.seq_lens is None:
        return [(b, None) for b in measure.batch_sizes]
    if data.vocab_size is None:
        raise SuiteError(f"{source}: measure.seq_lens: dataset {data.name!r} is not token sequences")
    return [(b, s) for s in measure.seq_lens for b in measure.batch_sizes]


def latency_result(batch_size: int, seq_len: int | None, measured: timing.Timing, metric: str = "call",
                   round_: int = 1, others: dict | None = None) -> tuple[LatencyResult, list[str]]:
    """One process's row of one shape (its `processes` entry says which), and what its samples
    cannot support."""
    from suite.measure.processes import process_entry

    samples_ms = tuple(s * 1e3 for s in measured.samples_s)
    summary = stats.summarize(samples_ms)
    label = shape_label(batch_size, seq_len, metric)
    notes = [f"{label}: {w}" for w in stats.sample_warnings(summary)]
    if measured.stopped_by == "max_time_s":
        notes.append(f"{label}: max_time_s reached after only {summary.n} samples (fewer than min_samples)")
    if measured.loops > 1:
        notes.append(f"{label}: calls shorter than the timer allows; each sample is the mean of "
                     f"{measured.loops} calls, so percentiles are of those means")
    row = LatencyResult(batch_size=batch_size, seq_len=seq_len, samples_ms=samples_ms, loops=measured.loops,
                        warmup_calls=measured.warmup_calls, stopped_by=measured.stopped_by, metric=metric,
                        others=others, **summary.__dict__)
    return replace(row, processes=(process_entry(row, round_),)), notes


def end_to_end(measured: timing.Timing) -> dict:
    """The host-to-host figures: the percentiles of samples that include host-device copies."""
    summary = stats.summarize([t * 1e3 for t in measured.samples_s])
    return {"timer": "perf_counter", "n": summary.n, "p50_ms": summary.p50_ms, "p90_ms": summary.p90_ms,
            "p99_ms": summary.p99_ms, "mean_ms": summary.mean_ms}


def timing_plan(m: Measure) -> timing.TimingPlan:
    """One process's share of the shape's warm-up, samples and time: the scenario's figures over
    `processes` (each process still makes at least warmup_calls warm-up calls)."""
    share = m.processes
    return timing.TimingPlan(warmup_s=m.warmup_s / share, warmup_calls=m.warmup_calls,
                             min_samples=-(-m.min_samples // share), max_samples=-(-m.max_samples // share),
                             min_time_s=m.min_time_s / share, max_time_s=m.max_time_s / share,
                             min_sample_s=m.min_sample_ms / 1e3 if m.min_sample_ms else None)


def batch_of(inputs: Any, batch_size: int, seq_len: int | None = None) -> Any:
    """The first `batch_size` inputs, repeated when the split is smaller than the batch;
    token sequences cut or padded (id 0, masked as padding) to `seq_len` when given."""
    import torch

    repeats = -(-batch_size // len(inputs))
    batch = torch.cat([inputs] * repeats)[:batch_size] if repeats > 1 else inputs[:batch_size]
    if seq_len is None:
        return batch
    batch = batch[:, :seq_len]
    return torch.nn.functional.pad(batch, (0, seq_len - batch.shape[1]), value=0)
