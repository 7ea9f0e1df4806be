"""Load modes: offline throughput from total time, the server mode's queueing and rate search,
the harness's own cost, and each mode end to end in a quick run."""

import time

import pytest

from suite.config.scenario import load as load_scenario
from suite.errors import ScenarioError
from suite.measure import load, timing


def test_offline_throughput_counts_all_the_work_over_all_the_time():
    summary = load.offline_summary([(1, (1.0, 1.0, 2.0)), (8, (4.0, 4.0)), (32, (20.0, 20.0))])
    assert [row["batch_size"] for row in summary["by_batch_size"]] == [1, 8, 32]
    assert [row["samples_per_s"] for row in summary["by_batch_size"]] == pytest.approx([750.0, 2000.0, 1600.0])
    assert (summary["best_batch_size"], summary["samples_per_s"]) == (8, pytest.approx(2000.0))


def test_rate_search_bisects_to_the_highest_rate_that_meets_the_bound():
    def mm1(rate):  # one server at 10 ms a query: mean time in system 1 / (100 - rate)
        return [1.0 / (100.0 - rate)] * 700

    result = load.search_rate(mm1, service_s=0.010, bound_ms=50.0, steps=6)
    rates = [t["rate_qps"] for t in result["trials"]]
    assert rates == [50.0, 75.0, 87.5, 81.25, 78.125, 79.6875]
    assert [t["met"] for t in result["trials"]] == [True, True, False, False, True, True]
    assert result["max_rate_qps"] == 79.6875 and result["latency_bound_ms"] == 50.0


def test_no_rate_meets_a_bound_below_the_service_time():
    result = load.search_rate(lambda rate: [0.010] * 700, service_s=0.010, bound_ms=5.0, steps=3)
    assert result["max_rate_qps"] is None and not any(t["met"] for t in result["trials"])


def test_a_trial_with_too_few_queries_judges_by_the_sample_p99_and_says_so():
    [few] = load.search_rate(lambda rate: [0.001] * 100, service_s=0.001, bound_ms=5.0, steps=1)["trials"]
    assert few["p99_bound_ms"] is None and few["met"]


def test_queries_that_arrive_faster_than_they_are_served_wait_in_the_queue():
    latencies = load.poisson_run(lambda: time.sleep(0.005), lambda: None, rate_qps=1000.0, min_queries=100,
                                 min_time_s=0.0, seed=0)
    assert len(latencies) == 100
    assert latencies[-1] > 0.1  # ~100 queries x 4 ms of backlog: the wait counts, not just the 5 ms call


def test_harness_cost_is_a_timed_call_that_does_nothing():
    synced = []
    cost = timing.harness_cost(lambda: synced.append(1), calls=50)
    assert len(synced) == 100  # synchronized before and after each call, like every sample
    assert 0 < cost < 0.01


@pytest.mark.parametrize(("measure", "message"), [
    ("{mode: server}", "measure.latency_bound_ms: mode server needs a latency bound"),
    ("{mode: server, latency_bound_ms: 5, batch_sizes: [4]}", "measure.batch_sizes: mode server serves one query"),
    ("{mode: burst}", "measure.mode: input should be 'single_stream', 'offline' or 'server'"),
])
def test_load_mode_errors(write_scenario, measure, message):
    path = write_scenario(f"model: mlp\nmeasure: {measure}\nvariants: [{{name: a}}]\n")
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_offline_and_server_modes_end_to_end(write_scenario, run_quick):
    path = write_scenario("""
        model: {name: mlp, hidden: [16]}
        dataset: digits
        measure: {batch_sizes: [1, 8]}
        variants:
          - {name: offline, measure: {mode: offline}}
          - {name: server, measure: {mode: server, latency_bound_ms: 50, rate_steps: 3}}
          - {name: single}
    """)
    status, _, err, results = run_quick(path)
    assert status == 0, err
    offline, server, single = results["variants"]
    assert offline["load"]["best_batch_size"] in (1, 8) and offline["load"]["samples_per_s"] > 0
    assert len(server["load"]["trials"]) == 3 and server["load"]["percentile"] == 99
    assert all(t["queries"] >= 10 for t in server["load"]["trials"])
    assert single["load"] is None
    assert "server mode: 3 of 3 trials had too few queries for a 99 %-confidence p99 (needs >= 662)" in \
        " ".join(server["warnings"])
    assert all(v["harness_overhead_us"] > 0 for v in results["variants"])
    assert all((v["energy"] is None) == bool(v["energy_reason"]) for v in results["variants"])  # a figure or why not
