"""Accuracy-aware choice and parameter sweeps."""

import pytest

from suite.analysis.select import describe, recommend
from suite.config.scenario import Select, load
from suite.errors import ScenarioError
from suite.results import LatencyResult, VariantResult


def variant(name, accuracy, p50_b1, reference="fp32", status="ok", spread=0.01, size=None, steps=0):
    """A variant timed at b=1 in five processes whose medians lie within +/-`spread` of `p50_b1`."""
    levels = [p50_b1 * (1 + spread * k) for k in (-1, -0.5, 0, 0.5, 1)]
    samples = tuple(x for level in levels for x in (level * 0.99, level, level * 1.01))
    processes = tuple({"round": r, "n": 3, "p50_ms": level, "ci95_p50_ms": [level, level]}
                      for r, level in enumerate(levels, 1))
    row = LatencyResult(batch_size=1, samples_ms=samples, p50_ms=p50_b1, p90_ms=p50_b1, p95_ms=p50_b1,
                        p99_ms=p50_b1, mean_ms=p50_b1, std_ms=0.0, cv=0.0, ci95_p50_ms=(levels[0], levels[-1]),
                        n=len(samples), robust_cv=0.0, outliers=0, processes=processes)
    return VariantResult(name=name, model="m", backend="eager", accuracy=accuracy, agreement_with=reference,
                         latency=(row,) if status == "ok" else (), status=status, size_bytes=size,
                         compress=tuple({"method": "m"} for _ in range(steps)))


def test_the_fastest_variant_within_the_budget_is_recommended():
    variants = (variant("fp32", 0.98, 10.0), variant("int8", 0.975, 4.0), variant("pruned90", 0.90, 2.0),
                variant("bf16", 0.978, 6.0), variant("broken", None, 1.0, status="failed"))
    selection = recommend(Select(max_accuracy_drop=0.01), variants)
    assert selection["recommended"] == "int8"
    assert [w["variant"] for w in selection["within"]] == ["int8", "bf16", "fp32"]  # fastest first
    assert selection["broke"] == [{"variant": "pruned90", "accuracy_drop": pytest.approx(0.08), "over": ["max_accuracy_drop"]}]
    assert selection["not_judged"] == [{"variant": "broken", "reason": "failed"}]
    lines = describe(selection)
    assert lines[0].startswith("Recommended: int8, the fastest by p50_ms at b=1 (4 ms)")
    assert lines[1] == "Over the budget: pruned90 (drop 8.00 points)."


def test_variants_tied_with_the_fastest_are_named_and_the_smallest_of_them_recommended():
    variants = (variant("fp32", 0.98, 10.0, size=400), variant("int8", 0.975, 4.0, size=100, steps=1),
                variant("int8-searched", 0.975, 3.9, size=100, steps=1, spread=0.08),
                variant("int8-small", 0.975, 4.05, size=60, steps=2, spread=0.05), variant("bf16", 0.978, 6.0, size=200))
    selection = recommend(Select(max_accuracy_drop=0.01), variants)
    assert selection["fastest"] == "int8-searched"
    assert selection["recommended"] == "int8-small"  # tied with the fastest, and the smallest
    assert selection["tied"] == ["int8-searched", "int8"]
    by_name = {w["variant"]: w for w in selection["within"]}
    assert by_name["bf16"]["vs_fastest"]["verdict"] == "slower" and by_name["bf16"]["vs_fastest"]["design"] == "processes"
    assert by_name["int8"]["vs_fastest"]["ci95"][0] < 1 < by_name["int8"]["vs_fastest"]["ci95"][1]
    line = describe(selection)[0]
    assert line.startswith("Recommended: int8-small (4.05 ms by p50_ms at b=1, its drop 0.50 points), tied with "
                           "int8-searched, int8:")
    assert "none slower than the fastest, int8-searched, by the 95 % interval" in line
    # Equal in size and steps (and neither searched): the faster figure.
    same = (variant("fp32", 0.98, 10.0, size=400), variant("a", 0.98, 4.0, size=100, steps=1),
            variant("b", 0.98, 3.99, size=100, steps=1))
    assert recommend(Select(max_accuracy_drop=0.01), same)["recommended"] == "b"


def test_nothing_within_budget_and_untrained_models_are_said_so():
    variants = (variant("fp32", None, 10.0), variant("int8", None, 4.0))
    selection = recommend(Select(max_accuracy_drop=0.0, batch_size=8), variants)
    assert selection["recommended"] is None
    assert describe(selection)[0].startswith("No variant is within the budget")
    assert {n["variant"] for n in selection["not_judged"]} == {"fp32", "int8"}


SWEEP = """
model: {name: mlp, hidden: [8]}
variants:
  - name: fp32
  - name: pruned
    compress: [{method: magnitude, sparsity: [0.3, 0.6], scope: [global, layer]}, finetune]
  - name: last
"""


def test_a_list_where_one_value_is_expected_sweeps_into_variants(write_scenario):
    scenario = load(write_scenario(SWEEP))
    names = [v.name for v in scenario.variants]
    assert names == ["fp32", "pruned[sparsity=0.3,scope=global]", "pruned[sparsity=0.3,scope=layer]",
                     "pruned[sparsity=0.6,scope=global]", "pruned[sparsity=0.6,scope=layer]", "last"]
    steps = scenario.variants[2].compress
    assert (steps[0].params.sparsity, steps[0].params.scope, steps[1].name) == (0.3, "layer", "finetune")


def test_a_bad_value_in_a_sweep_names_the_variant_as_written(write_scenario):
    text = SWEEP.replace("[0.3, 0.6]", "[0.3, 1.5]").replace("name: last", "name: last\n    backend: eagr")
    with pytest.raises(ScenarioError, match=r"variants\[1\]\.compress\[0\]\.sparsity: input should be less than 1"):
        load(write_scenario(text))
    with pytest.raises(ScenarioError, match=r"variants\[2\]\.backend: unknown backend 'eagr'"):
        load(write_scenario(SWEEP.replace("name: last", "name: last\n    backend: eagr")))


def test_select_in_a_run_recommends_and_compile_runs_int8_static(write_scenario, run_quick):
    text = """
    model: {name: cnn, channels: [8, 16], hidden: 32}
    measure: {batch_sizes: [1, 4]}
    select: {max_accuracy_drop: 0.5, batch_size: 4}
    variants:
      - name: fp32
      - name: int8
        backend: compile
        compress: [{method: int8_static, calibration_batches: 2}]
    """
    status, out, _, results = run_quick(write_scenario(text))
    assert status == 0, out
    fp32, int8 = results["variants"]
    assert int8["status"] == "ok" and int8["backend_info"]["compile_s"] > 0
    assert int8["agreement_with"] == "fp32"
    selection = results["selection"]
    assert selection["recommended"] in ("fp32", "int8") and not selection["broke"]
    assert {w["variant"] for w in selection["within"]} == {"fp32", "int8"}
    assert "Recommended: " in out


def test_a_recommendation_that_rests_on_busy_figures_says_so():
    v = variant("int8", 0.975, 4.0, size=100, steps=1)
    row = v.latency[0]
    busy_row = type(row)(**{**row.__dict__, "processes": tuple({**p, "busy": True} for p in row.processes)})
    variants = (variant("fp32", 0.98, 10.0, size=400), VariantResult(**{**v.__dict__, "latency": (busy_row,)}))
    selection = recommend(Select(max_accuracy_drop=0.01), variants)
    assert selection["recommended"] == "int8" and selection["busy"] == ["int8"]
    assert "It rests on figures timed while the machine was busy (int8 at p50_ms at b=1), which are not " \
           "comparable" in describe(selection)[0]
