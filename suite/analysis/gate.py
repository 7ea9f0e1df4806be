"""`suite gate`: fail CI on a real latency regression, not on noise.

The rule: exit 1 when a (variant, input shape) is slower by the one rule of
suite.measure.significance (the ratio's 95 % interval above 1) AND its estimated ratio is above
1 + max_slowdown. Two ways to get the samples:

- stored: a baseline run (saved earlier, perhaps on another day) against the candidate run,
  compared as `suite compare` does (suite.analysis.compare): across processes where both runs
  timed the shape in several, else each set of samples on its own (Mann-Whitney U, bootstrap
  interval of the ratio). The machine may have drifted in between; on shared CI runners that is
  the weaker option.
- paired: both scenarios prepared in one process and timed in alternating rounds (A B, B A, ...),
  so drift between rounds cancels (Wilcoxon signed-rank on the rounds' log ratios). A generative
  decoder is timed in whole requests, alternately, and gives two rows per shape: time to first
  token, and time per output token (each request's decode time over its tokens after the first,
  as MLPerf's LLM rules define it).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from suite.analysis.compare import Row
from suite.errors import SuiteError
from suite.measure.significance import ALPHA
from suite.progress import Bars
from suite.run.run_plan import RunOptions

BASELINES = Path("baselines")


def parse_slowdown(text: str) -> float:
    """'10%' or '0.10' -> 0.10."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not match:
        raise SuiteError(f"--max-slowdown: {text!r} is not a percentage such as 10% (or a fraction such as 0.1)")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 < value < 10:
        raise SuiteError(f"--max-slowdown: {text!r} must be above 0 (10% = 0.1)")
    return value


def regressions(rows: list[Row], max_slowdown: float, alpha: float = ALPHA) -> list[Row]:
    return [row for row in rows if row.comparison.verdict(alpha) == "slower" and row.comparison.ratio > 1 + max_slowdown]


def baseline_path(name_or_path: str) -> Path:
    """A run folder or results.json, or the name of a baseline saved with `suite baseline save`."""
    path = Path(name_or_path)
    if path.exists():
        return path
    saved = BASELINES / name_or_path
    if (saved / "results.json").is_file():
        return saved
    raise SuiteError(f"--baseline: {name_or_path}: no such run folder, results file or saved baseline "
                     f"(looked in {BASELINES}/)")


def save_baseline(run: Path, name: str, root: Path = BASELINES) -> Path:
    """Copy a run's results.json to ROOT/NAME/results.json (what `--baseline NAME` reads)."""
    from suite.results import atomic_write_text, load_json, save_json

    if not re.fullmatch(r"[\w.-]+", name):
        raise SuiteError(f"baseline save: --name {name!r}: use letters, digits, '.', '-' and '_'")
    result = load_json(run)
    target = root / name
    save_json(result, target / "results.json")
    atomic_write_text(target / "SOURCE", f"{run}\ncreated {result.created}\ncommit "
                                         f"{result.environment.get('git_commit')}\n")
    return target


@dataclass(frozen=True)
class PairedPlan:
    rounds: int = 15  # Wilcoxon's one-sided p can go down to 2^-rounds
    block_samples: int = 20  # samples per side per round
    warmup_calls: int = 2  # before each block: the other model has just had the caches
    block_requests: int = 3  # a decoder's requests per side per round (each one a sample of both metrics)


def paired_rows(base: Any, candidate: Any, options: RunOptions, plan: PairedPlan, bars: Bars) -> list[Row]:
    """Every variant both scenarios have (by name), at every input shape both time it at,
    timed in alternating rounds in this process."""
    import torch

    from suite.build.building import Builder
    from suite.measure import neighbours
    from suite.results import shape_label
    from suite.run.run_plan import quickened

    names = [v.name for v in base.variants if v.name in {c.name for c in candidate.variants}]
    if not names:
        raise SuiteError(f"{candidate.source}: no variant name in common with {base.source}")
    scenarios = [quickened(s) if options.quick else s for s in (base, candidate)]
    builders = [Builder(s, bars, torch.get_num_threads(), options.cache_dir) for s in scenarios]
    rows = []
    for name in names:
        sides = [builder.ready(next(v for v in builder.scenario.variants if v.name == name)) for builder in builders]
        if sides[0].task.name != sides[1].task.name:
            raise SuiteError(f"variant {name!r} is a generative decoder in one scenario and not in the other: "
                             "give the variants different names")
        for batch_size, seq_len in shared_shapes(sides[0].shapes, sides[1].shapes):
            with bars.task(f"paired: {name} {shape_label(batch_size, seq_len)}", total=plan.rounds) as task:
                before = neighbours.snapshot()
                timed = sides[0].task.paired(sides, batch_size, seq_len, plan, task)
                others = neighbours.others(before, neighbours.snapshot())
            rows += [replace(paired_row(name, batch_size, seq_len, rounds, metric), others=others)
                     for metric, rounds in timed.items()]
    return rows


def shared_shapes(first: list, second: list) -> list:
    return [shape for shape in first if shape in second]


def time_rounds(calls: list, sides: list, plan: PairedPlan, task: Any) -> tuple[list, list]:
    """Per round, `block_samples` samples of each side taken alternately (A B, B A, A B, ...), so
    that a change of the machine's speed, which here comes in steps of tens of milliseconds,
    falls on both sides alike; each side's calls per sample calibrated once, as `suite run` does."""
    from suite.measure import timing

    loops = [calibrate(call, side) for call, side in zip(calls, sides, strict=False)]
    samples: tuple[list, list] = ([], [])
    for r in range(plan.rounds):
        for i in (0, 1):
            sides[i].use_threads()
            timing.warm_up(calls[i], sides[i].sync, 0.0, time.perf_counter, plan.warmup_calls)
        rows: tuple[list, list] = ([], [])
        for k in range(plan.block_samples):
            for i in ((0, 1) if (r + k) % 2 == 0 else (1, 0)):
                sides[i].use_threads()
                rows[i].append(1e3 * timing.one_sample(calls[i], sides[i].sync, loops[i], time.perf_counter))
        samples[0].append(rows[0])
        samples[1].append(rows[1])
        task.update(r + 1)
    return samples


def request_rounds(requests: list, sides: list, plan: PairedPlan, task: Any) -> dict[str, tuple[list, list]]:
    """Per round, `block_requests` whole requests of each side, alternately (A B, B A, ...), after
    one warm-up request each: {"ttft": rounds, "tpot": rounds} in milliseconds, one sample per
    request (TPOT: the request's decode steps over their count)."""
    samples: dict[str, tuple[list, list]] = {"ttft": ([], []), "tpot": ([], [])}
    for r in range(plan.rounds):
        for i in (0, 1):
            sides[i].use_threads()
            requests[i]()
        rows = {metric: ([], []) for metric in samples}
        for k in range(plan.block_requests):
            for i in ((0, 1) if (r + k) % 2 == 0 else (1, 0)):
                sides[i].use_threads()
                prefill, steps = requests[i]()
                rows["ttft"][i].append(1e3 * prefill)
                rows["tpot"][i].append(1e3 * sum(steps) / len(steps))
        for metric in samples:
            samples[metric][0].append(rows[metric][0])
            samples[metric][1].append(rows[metric][1])
        task.update(r + 1)
    return samples


def calibrate(call: Any, side: Any) -> int:
    from suite.measure import timing

    side.use_threads()
    _, last = timing.warm_up(call, side.sync, 0.2, time.perf_counter)
    return timing.calibrate(call, side.sync, timing.shortest_sample(), time.perf_counter, first=last)


def paired_row(name: str, batch_size: int, seq_len: int | None, rounds: tuple[list, list],
               metric: str = "call") -> Row:
    import numpy as np

    from suite.measure.significance import compare_paired
    from suite.results import shape_label

    base, candidate = rounds
    return Row(name, shape_label(batch_size, seq_len, metric), float(np.median(np.concatenate(base))),
               float(np.median(np.concatenate(candidate))), compare_paired(base, candidate))
