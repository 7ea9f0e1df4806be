"""Latency across processes (suite.measure.processes): the interval's coverage on simulated
processes with a known between-process variance, the A/A rule, pooling rows and results."""

import math

import numpy as np
import pytest

from suite.measure import stats
from suite.measure.processes import (
    compare_processes,
    compare_rows,
    merged,
    per_process,
    pooled,
    process_interval,
    speedup_text,
)
from suite.results import LatencyResult, ThroughputResult, VariantResult

BETWEEN = 0.05  # sd of a process's log level: medians of identical processes ~5 % apart, as measured here
WITHIN = 0.10  # sd of a sample's log time within one process


def simulated_process(rng, level=1.0, n=200):
    """One process's samples: its own level (log-normal around `level`), log-normal noise within
    it, and a few far outliers (the machine's interruptions)."""
    own = level * math.exp(rng.normal(0, BETWEEN))
    samples = own * np.exp(rng.normal(0, WITHIN, n))
    samples[rng.random(n) < 0.02] *= 3
    return samples


def medians_of(rng, processes, level=1.0):
    return [float(np.median(simulated_process(rng, level))) for _ in range(processes)]


@pytest.mark.parametrize("processes", [3, 5, 10])
def test_the_interval_across_processes_covers_the_typical_median_95_percent_of_the_time(processes):
    rng = np.random.default_rng(1)
    runs = 2000
    covered = 0
    for _ in range(runs):
        low, high = process_interval(medians_of(rng, processes))
        covered += low <= 1.0 <= high  # the typical median: exp(E log median) = 1 here
    assert 0.93 <= covered / runs <= 0.97


def test_one_process_bootstrap_and_a_bootstrap_over_processes_both_undercover():
    """Why the interval is a t-interval on the per-process medians (the module's docstring)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(2)
    runs, one_process, over_five = 300, 0, 0
    for _ in range(runs):
        samples = simulated_process(rng)
        low, high = stats.median_ci(samples, 0.95, seed=0)
        one_process += low <= 1.0 <= high
        logs = np.log(medians_of(rng, 5))
        ci = bootstrap((logs,), np.mean, confidence_level=0.95, n_resamples=999, method="percentile",
                       random_state=rng).confidence_interval
        over_five += ci.low <= 0.0 <= ci.high
    assert one_process / runs < 0.6  # a process's own interval misses the other processes' levels
    assert over_five / runs < 0.9


def test_identical_variants_are_tied_and_at_most_5_percent_of_pairs_have_disjoint_intervals():
    """The A/A benchmark's rule on simulated identical variants (benchmarks/aa.py runs it for real)."""
    rng = np.random.default_rng(3)
    pairs, disjoint, called_different = 1000, 0, 0
    for _ in range(pairs):
        a, b = medians_of(rng, 5), medians_of(rng, 5)
        (la, ha), (lb, hb) = process_interval(a), process_interval(b)
        disjoint += ha < lb or hb < la
        called_different += compare_processes(a, b).verdict() != "no significant change"
    assert disjoint / pairs <= 0.05
    assert 0.02 <= called_different / pairs <= 0.08  # the rule's 5 % false calls, by design


def test_a_real_difference_is_found_across_processes():
    rng = np.random.default_rng(4)
    base, slower = medians_of(rng, 5), medians_of(rng, 5, level=1.3)
    c = compare_processes(base, slower)
    assert c.design == "processes" and c.verdict() == "slower" and 1.15 < c.ratio < 1.45
    assert compare_processes(slower, base).verdict() == "faster"


def test_equal_values_on_both_sides_and_too_few_processes():
    same = compare_processes([1.0, 1.0], [1.0, 1.0])
    assert (same.ratio, same.verdict()) == (1.0, "no significant change")
    assert compare_processes([1.0, 1.0], [2.0, 2.0]).verdict() == "slower"
    with pytest.raises(ValueError):
        compare_processes([1.0], [1.0, 2.0])
    assert process_interval([2.0]) == (2.0, 2.0)


def row(samples, round_=1, batch_size=1):
    summary = stats.summarize(samples)
    made = LatencyResult(batch_size=batch_size, samples_ms=tuple(float(x) for x in samples), **summary.__dict__)
    from suite.measure.processes import process_entry

    return LatencyResult(**{**made.__dict__, "processes": (process_entry(made, round_),)})


def test_rows_of_several_processes_pool_their_samples_and_take_the_interval_across_them():
    rng = np.random.default_rng(5)
    rows = [row(simulated_process(rng), r) for r in (2, 1, 3)]  # in any order: pooled by round
    one = pooled(rows)
    assert [p["round"] for p in one.processes] == [1, 2, 3]
    assert one.n == sum(len(r.samples_ms) for r in rows) and one.across_processes
    assert per_process(one) == pytest.approx([rows[1].p50_ms, rows[0].p50_ms, rows[2].p50_ms])
    assert one.ci95_p50_ms == pytest.approx(process_interval(per_process(one)))
    assert one.p50_ms == pytest.approx(float(np.median(one.samples_ms)))


def test_rows_of_one_process_are_compared_on_their_samples_and_say_so():
    rng = np.random.default_rng(6)
    a, b = row(simulated_process(rng)), row(simulated_process(rng))
    assert compare_rows(a, b).design == "independent"
    several = pooled([row(simulated_process(rng), r) for r in (1, 2, 3)])
    assert compare_rows(several, pooled([row(simulated_process(rng), r) for r in (1, 2, 3)])).design == "processes"
    assert compare_rows(a, several).design == "independent"  # one side has one process


def test_a_row_of_one_sample_is_compared_without_failing_and_is_tied():
    rng = np.random.default_rng(13)
    one, many = row([1.0]), row(simulated_process(rng))
    assert compare_rows(one, many).verdict() == "no significant change"
    assert speedup_text(many, one).endswith(", tied")


def test_speedup_text_says_tied_where_the_interval_holds_one():
    rng = np.random.default_rng(7)
    base = pooled([row(simulated_process(rng), r) for r in range(1, 6)])
    same = pooled([row(simulated_process(rng), r) for r in range(1, 6)])
    fast = pooled([row(simulated_process(rng, level=0.5), r) for r in range(1, 6)])
    assert speedup_text(base, same).endswith(", tied")
    text = speedup_text(base, fast)
    assert text.startswith(("1.9", "2.0", "2.1")) and "tied" not in text


def test_a_variant_merges_its_later_processes_and_names_a_failed_one():
    rng = np.random.default_rng(8)
    first_row = row(simulated_process(rng))
    first = VariantResult(name="v", model="m", backend="eager", latency=(first_row,),
                          throughput=(ThroughputResult(1, 1e3 / first_row.p50_ms),), seconds=10.0,
                          phases={"start-up": 1.0, "sampling": 9.0},
                          warnings=("b=1: a warning", f"b=1: {stats.count_warnings(first_row)[0]}"))
    second = VariantResult(name="v", model="m", backend="eager", latency=(row(simulated_process(rng), 2),),
                           seconds=2.0, phases={"rebuild": 0.5, "sampling": 1.5})
    third = VariantResult(name="v", model="m", backend="eager", status="failed", error="it crashed", seconds=1.0)
    result = merged(first, [(2, second), (3, third)])
    assert len(result.latency[0].processes) == 2
    assert result.throughput[0].samples_per_s == pytest.approx(1e3 / result.latency[0].p50_ms)
    assert "process 3 failed: it crashed" in result.warnings and "b=1: a warning" in result.warnings
    counts = [w for w in result.warnings if "too few" in w]  # said once, of the pooled samples
    assert counts == ["b=1: only 400 samples: too few for a 99%-confidence claim on p99 (p99 needs >= 662)"]
    assert result.seconds == 13.0 and result.phases == {"start-up": 1.0, "sampling": 10.5, "rebuild": 0.5}
    assert merged(first, []) is first
    failed = VariantResult(name="v", model="m", backend="eager", status="failed")
    assert merged(failed, [(2, second)]) is failed


RUN = """
name: processes
measure: {batch_sizes: [1, 4], processes: 3}
select: {max_accuracy_drop: 0.5, batch_size: 1}
variants:
  - name: fp32
    model: {name: mlp, hidden: [16]}
  - name: int8
    model: {name: mlp, hidden: [16]}
    compress: [int8_dynamic]
  - name: again
    model: {name: mlp, hidden: [16]}
"""


def rounds_ok(row, processes):
    """The rounds that timed a row: each of 1..processes unless a busy one was left out, then the
    busy variants' extra rounds (a test run beside others, as CI's two workers, is often busy)."""
    rounds = [p["round"] for p in row.processes]
    assert rounds == sorted(rounds) and len(rounds) >= 2 and set(rounds) <= set(range(1, processes + 3)), rounds
    return rounds


def test_a_run_times_each_shape_in_several_processes_in_rounds_and_resumes_them(write_scenario, run_quick, tmp_path,
                                                                                monkeypatch):
    from suite.__main__ import main
    from suite.results import load_json
    from suite.run import runner

    monkeypatch.setattr(runner, "QUIET_WAIT_S", 0.5)  # beside the other test worker the machine is rarely quiet
    code, out, _, results = run_quick(write_scenario(RUN))
    assert code == 0, out
    run_dir = next((tmp_path / "reports" / "processes").iterdir())
    run = load_json(run_dir)
    for v in run.variants:
        assert v.status == "ok", v.error
        for row in v.latency:
            assert rounds_ok(row, 3) and row.across_processes
            assert row.ci95_p50_ms == pytest.approx(process_interval(per_process(row)))
            assert sum(p["n"] for p in row.processes) == row.n == len(row.samples_ms)
        assert "later" not in str(v.phases) and v.phases["sampling"] > 0
        assert not any(w.startswith("intervals within one process") for w in v.warnings)
    made = sorted(p.name.rsplit("-", 1)[1] for p in (run_dir / "rounds").iterdir())
    assert made[:6] == ["2.json"] * 3 + ["3.json"] * 3 and set(made) <= {"2.json", "3.json", "4.json", "5.json"}
    assert not (run_dir / "built").exists()  # removed once every process has run
    assert set(run.selection) >= {"tied", "fastest", "busy"}
    # An interrupted run: its third processes lost; --resume times them again, keeps the rest.
    for file in (run_dir / "rounds").glob("*-3.json"):
        file.unlink()
    saved = {p.name: p.read_bytes() for p in (run_dir / "rounds").glob("*-2.json")}
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert {p.name: p.read_bytes() for p in (run_dir / "rounds").glob("*-2.json")} == saved
    again = load_json(run_dir)
    assert all(rounds_ok(row, 3) for v in again.variants for row in v.latency)
    assert len(list((run_dir / "rounds").glob("*-3.json"))) == 3


def test_a_quick_run_keeps_one_process_and_says_what_its_intervals_miss(write_scenario, run_quick, tmp_path):
    code, out, _, _ = run_quick(write_scenario(RUN.replace(", processes: 3", "")))
    assert code == 0
    assert "[caution] intervals within one process: fp32, int8, again" in out
    from suite.results import load_json

    run = load_json(next((tmp_path / "reports" / "processes").iterdir()))
    assert all(len(row.processes) == 1 for v in run.variants for row in v.latency)


def several(rng, processes=3, level=1.0, busy_rounds=()):
    rows = []
    for r in range(1, processes + 1):
        one = row(simulated_process(rng, level), r)
        if r in busy_rounds:
            one = LatencyResult(**{**one.__dict__, "processes": ({**one.processes[0], "busy": True},)})
        rows.append(one)
    return pooled(rows)


def test_a_version_2_file_loads_with_each_row_one_process_and_bad_counts_are_refused():
    from suite.errors import SuiteError
    from suite.results import variant_dict, variant_from_dict

    rng = np.random.default_rng(9)
    old = variant_dict(VariantResult(name="v", model="m", backend="eager", latency=(row(simulated_process(rng)),)))
    for r in old["latency"]:
        del r["processes"]
    loaded = variant_from_dict({**old, "schema_version": 2})
    [only] = loaded.latency
    assert len(only.processes) == 1 and only.processes[0]["n"] == len(only.samples_ms) and not only.across_processes
    assert only.processes[0]["ci95_p50_ms"] == list(only.ci95_p50_ms)
    bad = variant_dict(loaded)
    bad["latency"][0]["processes"] = [{"round": 1, "n": 3}]  # not the samples' count
    with pytest.raises(SuiteError, match=r"latency\[0\]\.processes: each process's n"):
        variant_from_dict({**bad, "schema_version": 3}, "v.json")
    bad["latency"][0]["processes"] = [{"round": 1, "n": "many"}]
    with pytest.raises(SuiteError, match="processes"):
        variant_from_dict({**bad, "schema_version": 3}, "v.json")


def test_compare_and_the_stored_gate_judge_across_processes():
    from suite.analysis.compare import compare_runs
    from suite.results import RunResult

    rng = np.random.default_rng(10)

    def run_with(level):
        v = VariantResult(name="mlp", model="mlp", backend="eager", latency=(several(rng, 5, level),))
        return RunResult(suite_version="0", created="2026-12-06T00:00:00+00:00", scenario={}, environment={},
                         variants=(v,))

    same = compare_runs(run_with(1.0), run_with(1.0))[0].comparison
    assert same.design == "processes" and same.verdict() == "no significant change"
    slower = compare_runs(run_with(1.0), run_with(1.4))[0].comparison
    assert slower.design == "processes" and slower.verdict() == "slower"


def test_a_busy_process_is_left_out_where_two_quiet_ones_remain_and_said_so():
    rng = np.random.default_rng(11)
    rows = [row(simulated_process(rng), r) for r in (1, 2, 3)]
    rows[1] = LatencyResult(**{**rows[1].__dict__, "processes": ({**rows[1].processes[0], "busy": True},)})
    one = pooled(rows)
    assert [p["round"] for p in one.processes] == [1, 3] and one.across_processes
    both_busy = pooled([rows[1], LatencyResult(**{**rows[2].__dict__, "processes": (
        {**rows[2].processes[0], "busy": True},)}), rows[0]])
    assert len(both_busy.processes) == 3  # one quiet process is too few: all stay, and the row says busy
    from suite.measure.processes import busy

    assert busy(both_busy) and not busy(one)
    first = VariantResult(name="v", model="m", backend="eager", latency=(rows[0],), seconds=1.0, phases={})
    said = merged(first, [(2, VariantResult(name="v", model="m", backend="eager", latency=(rows[1],),
                                           warnings=("b=1: the machine was busy: ...",))),
                          (3, VariantResult(name="v", model="m", backend="eager", latency=(rows[2],)))])
    assert "process 2: b=1: left out: the machine was busy while it was timed" in said.warnings


def test_the_runner_times_busy_variants_again_and_only_those(tmp_path, monkeypatch):
    from suite.measure import neighbours
    from suite.run import runner
    from suite.run.run_folder import RunFolder

    rng = np.random.default_rng(12)
    monkeypatch.setattr(neighbours, "wait_quiet", lambda limit_s, window_s=1.0: True)
    names = ["quiet", "noisy"]
    firsts = {n: VariantResult(name=n, model="m", backend="eager", latency=(row(simulated_process(rng), 1),),
                               seconds=1.0, phases={}) for n in names}
    launched = []

    class Launcher:
        def again(self, variants, round_, started):
            for v in variants:
                launched.append((v.name, round_))
                one = row(simulated_process(rng), round_)
                if v.name == "noisy" and round_ == 2:  # busy the first time it is timed again
                    one = LatencyResult(**{**one.__dict__, "processes": ({**one.processes[0], "busy": True},)})
                yield VariantResult(name=v.name, model="m", backend="eager", latency=(one,), seconds=1.0, phases={})

    class Variant:
        def __init__(self, name):
            self.name = name

    class Scenario:
        def measure_of(self, v):
            class M:
                processes = 3
            return M()

    kept = {}
    folder = RunFolder(tmp_path)
    from suite.progress import Bars

    with Bars(plain=True) as bars:
        runner.timed_again(Scenario(), [Variant(n) for n in names], Launcher(), folder, bars, firsts,
                           lambda *done: kept.update((v.name, v) for v in done))
    assert launched == [("quiet", 2), ("noisy", 2), ("quiet", 3), ("noisy", 3), ("noisy", 4)]
    assert [p["round"] for p in kept["noisy"].latency[0].processes] == [1, 3, 4]  # the busy one left out
    assert [p["round"] for p in kept["quiet"].latency[0].processes] == [1, 2, 3]
