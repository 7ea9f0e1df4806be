"""How often does `suite gate` cry wolf, and how often does it catch a real slowdown? A benchmark,
not a test: it prints a table.

The model is `busy` (models/busy.py): a chain of identical small layers whose `slowdown`
parameter adds that fraction of them, so a slowdown of known size can be injected. Each trial is
one gate decision at the default threshold (10 %) through the gate's own code:

- paired: base and candidate timed in alternating rounds (`suite gate --paired`: 15 rounds of 20
  samples a side), Wilcoxon signed-rank on the rounds' log ratios;
- stored: a baseline measured once at the start, against a candidate measured in each trial
  (`suite gate --baseline`: independent samples, Mann-Whitney U), so the machine's drift between
  the baseline and the candidate counts, as it does with a baseline stored in a repository.

A/A is the base against itself: every failure is a false alarm. The injection is calibrated
first (the model's fixed part does not grow with its blocks), and the measured slowdown column,
the median over the trials of the estimated ratio, shows what the injection really did.

    python benchmarks/gate_power.py [--trials 100] [--slowdowns 0 0.03 0.10 0.25]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from cross_check import positive

import models  # noqa: F401  (registers the model zoo)
from suite.analysis.compare import Row
from suite.analysis.gate import PairedPlan, regressions, time_rounds
from suite.build.building import Builder
from suite.config.scenario import load
from suite.measure import timing
from suite.measure.significance import compare_independent, compare_paired
from suite.progress import Bars

THRESHOLD = 0.10
SCENARIO = """
name: busy
measure: {{batch_sizes: [1]}}
variants:
  - name: busy
    model: {{name: busy, blocks: {blocks}, slowdown: {slowdown}}}
"""


def ready(blocks: int, slowdown: float, folder: Path, bars: Bars):
    path = folder / f"busy-{slowdown}.yaml"
    path.write_text(SCENARIO.format(blocks=blocks, slowdown=slowdown))
    scenario = load(path)
    return Builder(scenario, bars, torch.get_num_threads()).ready(scenario.variants[0])


def calibrated(slowdowns: list[float], folder: Path, bars: Bars) -> tuple[int, dict[float, float]]:
    """Blocks and `slowdown` parameters that add each wanted fraction of the whole call's time.
    The model's fixed part (input and output layers, the call itself) does not grow with the
    blocks, and blocks come whole: so the fixed part is measured (50 blocks against 100, paired),
    and the blocks are chosen to make blocks + fixed part = 100, where 10 % is 10 blocks."""
    one, two = ready(50, 0.0, folder, bars), ready(50, 1.0, folder, bars)
    rounds = time_rounds([one.call(1, None), two.call(1, None)], [one, two], PairedPlan(rounds=30), _Quiet())
    ratio = compare_paired(*rounds).ratio  # (c + 100 w) / (c + 50 w)
    fixed = 50 * (2 - ratio) / (ratio - 1)  # c / w, in blocks
    blocks = max(10, 100 - round(fixed))
    print(f"calibration: 100 blocks took {ratio:.3f}x the time of 50; the fixed part is worth {fixed:.1f} "
          f"blocks; {blocks} blocks, and each 1 % of slowdown is one more")
    return blocks, {s: round(100 * s) / blocks for s in slowdowns}


def paired_trial(sides: list, plan: PairedPlan, task) -> Row:
    rounds = time_rounds([side.call(1, None) for side in sides], sides, plan, task)
    return Row("busy", "b=1", 0.0, 0.0, compare_paired(*rounds))


def stored_trial(baseline_ms: list[float], candidate, plan: PairedPlan) -> Row:
    return Row("busy", "b=1", 0.0, 0.0, compare_independent(baseline_ms, samples_ms(candidate, plan)))


def samples_ms(side, plan: PairedPlan) -> list[float]:
    """As many samples as a paired trial takes of one side, in one go."""
    n = plan.rounds * plan.block_samples
    block = timing.TimingPlan(warmup_s=0.0, warmup_calls=plan.warmup_calls, min_samples=n, max_samples=n,
                              min_time_s=0.0, max_time_s=60.0)
    return [s * 1e3 for s in timing.measure(side.call(1, None), side.sync, block).samples_s]


def run(trials: int, slowdowns: list[float]) -> tuple[int, list[dict]]:
    plan = PairedPlan()
    table = []
    with tempfile.TemporaryDirectory() as tmp, Bars() as bars:
        blocks, parameters = calibrated(slowdowns, Path(tmp), bars)
        base = ready(blocks, 0.0, Path(tmp), bars)
        baseline_ms = samples_ms(base, plan)  # the stored baseline, measured once
        for slowdown in slowdowns:
            candidate = ready(blocks, parameters[slowdown], Path(tmp), bars)
            paired, stored, seconds = [], [], []
            with bars.task(f"slowdown {slowdown:.0%}", total=trials) as task:
                for trial in range(trials):
                    start = time.perf_counter()
                    paired.append(paired_trial([base, candidate], plan, _Quiet()))
                    seconds.append(time.perf_counter() - start)
                    stored.append(stored_trial(baseline_ms, candidate, plan))
                    task.update(trial + 1)
            table.append(summary(slowdown, paired, stored, seconds))
    return blocks, table


class _Quiet:
    def update(self, *args, **kwargs) -> None:
        pass


def summary(slowdown: float, paired: list[Row], stored: list[Row], seconds: list[float]) -> dict:
    return {"injected": slowdown, "measured": statistics.median(r.comparison.ratio for r in paired) - 1,
            "paired_failed": len(regressions(paired, THRESHOLD)) / len(paired),
            "stored_failed": len(regressions(stored, THRESHOLD)) / len(stored),
            "stored_measured": statistics.median(r.comparison.ratio for r in stored) - 1,
            "trials": len(paired), "paired_s": statistics.median(seconds)}


def print_table(table: list[dict], blocks: int) -> None:
    print(f"\nbusy model, {blocks} blocks, batch 1, threshold {THRESHOLD:.0%}; 'failed' = share of trials the gate failed")
    print("| injected slowdown | measured (paired) | paired: gate failed | measured (stored) | stored: gate failed "
          "| trials | one paired decision |")
    print("|---|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['injected']:.0%} | {row['measured']:+.1%} | {row['paired_failed']:.0%} | "
              f"{row['stored_measured']:+.1%} | {row['stored_failed']:.0%} | {row['trials']} | {row['paired_s']:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=positive(int), default=100)
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.0, 0.03, 0.10, 0.25])
    args = parser.parse_args()
    blocks, table = run(args.trials, args.slowdowns)
    print_table(table, blocks)


if __name__ == "__main__":
    main()
