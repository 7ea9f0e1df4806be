"""Accuracy-aware search (issue 19): each strategy on a case with a known answer, the separation of
the validation split (trials) from the test split (the chosen variant), a budget that runs out,
resuming from saved trials, and bad `search:` blocks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from suite.__main__ import main
from suite.build.search import Searcher
from suite.config.scenario import load

# An MLP trained here on digits, then made sensitive to int8 in one named layer on purpose: layer
# "1" (the first Linear) gets one huge weight on pixel 0, which is 0 in every digit, so the float
# model is unchanged, but a per-tensor int8 scale of that layer rounds every other weight to 0.
SENSITIVE_MODULE = '''
import torch
from sklearn.datasets import load_digits


def make(seed=0):
    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:200] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)  # a few, to leave it imperfect
    y = torch.tensor(y[:200])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 48), torch.nn.ReLU(),
                                torch.nn.Linear(48, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        model[1].weight[:, 0] = 1000.0
    return model.eval()
'''

SCENARIO = """
name: search
model: {name: factory, factory: 'sensitive_model:make'}
dataset: digits
measure: {batch_sizes: [8]}
variants:
  - name: fp32
  - name: int8-auto
    compress: [int8_dynamic]
    search: {goal: {max_accuracy_drop: 0.02}, strategy: layer_fallback, max_trials: MAX_TRIALS}
"""


@pytest.fixture
def sensitive(tmp_path, monkeypatch):
    (tmp_path / "sensitive_model.py").write_text(SENSITIVE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import sensitive_model

    importlib.reload(sensitive_model)
    return sensitive_model


def run_search(tmp_path, max_trials: int, *extra: str, search: str = "") -> tuple[dict, dict]:
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("MAX_TRIALS", str(max_trials) + search))
    assert main(["run", str(tmp_path / "s.yaml"), "--quick", "--in-process", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), *extra]) == 0
    [results] = list((tmp_path / "out").glob("*/*/results.json"))
    variants = {v["name"]: v for v in json.loads(results.read_text())["variants"]}
    return variants["int8-auto"], variants["fp32"]


def split_accuracy(model, split: str) -> float:
    from suite.registry import DATASETS

    data = DATASETS.get("digits").load(DATASETS.get("digits").Params())
    part = getattr(data, split)
    with torch.inference_mode():
        return (model(part.x).argmax(-1) == part.y).float().mean().item()


def test_layer_fallback_keeps_the_sensitive_layer_in_float_and_chooses_on_validation(tmp_path, sensitive, capsys):
    searched, fp32 = run_search(tmp_path, 20)
    assert searched["status"] == "ok", searched["error"]
    search = searched["search"]
    trials = search["trials"]
    assert [t["phase"] for t in trials[:2]] == ["reference", "all quantized"]
    assert not trials[1]["meets"] and trials[1]["val_accuracy"] < 0.5  # every layer int8: the outlier wins
    sensitivity = {t["kept_float"][0]: t for t in trials if t["phase"] == "sensitivity"}
    assert set(sensitivity) == {"1", "3", "5"}
    assert max(sensitivity, key=lambda name: sensitivity[name]["val_accuracy"]) == "1"
    assert search["met"] and search["kept_float"] == ["1"] and search["stopped_by"] == "done"
    assert trials[search["chosen"]]["kept_float"] == ["1"]
    # The variant then ran with those settings, measured on the test split like any variant.
    [step] = searched["compress"]
    assert step["method"] == "int8_dynamic" and step["keep_float"] == ["1"]
    assert searched["compress_records"][0]["quantized_layers"] == ["3", "5"]
    # Trials were judged on the validation split, the result on the test split.
    model = sensitive.make()
    assert search["split"] == "validation"
    assert trials[0]["val_accuracy"] == pytest.approx(split_accuracy(model, "val"), abs=1e-6)  # one input: 3e-3
    assert fp32["accuracy"] == pytest.approx(split_accuracy(model, "test"), abs=1e-6)
    assert split_accuracy(model, "val") != split_accuracy(model, "test")  # the two are told apart here
    assert abs(searched["accuracy"] - fp32["accuracy"]) < 0.05
    assert all(t["speed_ms"] > 0 for t in trials)
    assert "search" in searched["phases"]
    run = next((tmp_path / "out").glob("*/*/"))
    page = (run / "index.html").read_text()
    assert "Accuracy-aware searches" in page and "layer_fallback search" in page and 'id="search-0"' in page
    assert "(chosen)" in page
    # The trials on the latency Pareto plot, apart from the variants and named as trials.
    assert "search trials (validation accuracy, short timing plan)" in page
    assert f"also shows {len(trials) - 1} trials of accuracy-aware searches" in page
    out = capsys.readouterr()
    assert "search trial 1 (every layer quantized)" in out.out + out.err


@pytest.mark.parametrize("sensitivity", ["weights", "weights_and_inputs"])
def test_a_rounding_sensitivity_ranks_the_sensitive_layer_first_in_one_pass_not_a_trial_per_layer(
        tmp_path, sensitive, sensitivity):
    searched, _ = run_search(tmp_path, 20, search=f", sensitivity: {sensitivity}")
    assert searched["status"] == "ok", searched["error"]
    search = searched["search"]
    assert [t["phase"] for t in search["trials"]] == ["reference", "all quantized", "fallback"]
    errors = search["ranking"]["errors"]
    assert set(errors) == {"1", "3", "5"} and max(errors, key=errors.get) == "1"
    assert errors["1"] > 10 * max(errors["3"], errors["5"])  # its int8 scale rounds its other weights to 0
    assert search["met"] and search["kept_float"] == ["1"] and search["ranking"]["seconds"] > 0
    assert search["ranking"]["by"] == sensitivity
    page = next((tmp_path / "out").glob("*/*/index.html")).read_text()
    rounded = "weights and inputs" if sensitivity == "weights_and_inputs" else "weights"
    assert f"layers ranked by the error of rounding their {rounded} to int8" in page
    assert searched["compress"][0]["keep_float"] == ["1"]


def test_weight_rounding_errors_against_a_hand_computed_case():
    from suite.build.sensitivity import round_input_to_uint8, round_to_int8, weight_rounding_errors

    weight = torch.tensor([[1.0, 0.004], [0.5, -0.25]])
    # Row 0: scale 1/127, so 0.004 rounds to 1/127 (0.00787); row 1: scale 0.5/127, -0.25 to -63.5 -> -64 steps.
    assert torch.allclose(round_to_int8(weight), torch.tensor([[1.0, 1 / 127], [0.5, -64 * 0.5 / 127]]))
    model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(weight)
    x = torch.tensor([[0.0, 2.0]])
    exact, rounded = x @ weight.T, x @ round_to_int8(weight).T
    errors = weight_rounding_errors(model, ["0", "1", "2", "absent"], [x])
    assert errors["0"] == pytest.approx(float((rounded - exact).pow(2).sum() / exact.pow(2).sum()), rel=1e-5)
    assert errors["1"] is None and errors["absent"] is None  # a ReLU has no weight; no such module
    assert errors["2"] is not None and torch.equal(model[0].weight, weight)  # the weights are put back
    # With the inputs rounded too: x = [0, 2] spans [0, 2] in 255 steps, on the grid already (0 and 2 exact);
    # a second input [0.5, 2] puts 0.5 at 63.75 steps: it rounds to 64 steps.
    x2 = torch.tensor([[0.0, 2.0], [0.5, 2.0]])
    stepped = torch.tensor([[0.0, 2.0], [64 * 2 / 255, 2.0]])
    assert torch.allclose(round_input_to_uint8(x2), stepped)
    both = weight_rounding_errors(model, ["0"], [x2], inputs_too=True)["0"]
    exact = x2 @ weight.T
    assert both == pytest.approx(float((stepped @ round_to_int8(weight).T - exact).pow(2).sum() / exact.pow(2).sum()),
                                 rel=1e-5)
    assert round_input_to_uint8(torch.tensor([[3, 7]])).tolist() == [[3, 7]]  # token ids are not rounded


def test_a_spent_budget_returns_the_best_so_far_with_a_warning_and_a_resumed_search_replays(tmp_path, sensitive):
    searched, _ = run_search(tmp_path, 1)
    search = searched["search"]
    assert searched["status"] == "ok" and not search["met"] and search["stopped_by"] == "max_trials"
    assert [t["phase"] for t in search["trials"]] == ["reference", "all quantized"]
    assert search["chosen"] == 1  # the closest to the goal (here the only compressed trial)
    assert any("no trial met the goal (max_accuracy_drop 0.02) before max_trials ran out" in w
               for w in searched["warnings"])
    # Interrupted after its trials were saved, before its result was: --resume replays them.
    run = next((tmp_path / "out").glob("*/*/"))
    [trials_file] = (run / "search").glob("int8-auto*.json")
    assert len(json.loads(trials_file.read_text())["trials"]) == 2
    [result_file] = (run / "variants").glob("int8-auto*.json")
    result_file.unlink()
    assert main(["run", "--resume", str(run), "--in-process"]) == 0
    again = {v["name"]: v for v in json.loads((run / "results.json").read_text())["variants"]}["int8-auto"]
    assert again["search"]["replayed"] == 1  # every trial but the reference, measured again for its outputs
    assert again["search"]["chosen"] == search["chosen"]
    assert [t["val_accuracy"] for t in again["search"]["trials"][1:]] == [t["val_accuracy"] for t in search["trials"][1:]]


def searched_variant(write_scenario, block: str, compress: str):
    path = write_scenario(f"model: {{name: mlp, hidden: [8]}}\nvariants:\n  - name: v\n    compress: {compress}\n"
                          f"    search: {block}\n")
    return load(path).variants[0]


def fake_searcher(variant, accuracy_of, speed_of=lambda steps: 1.0) -> Searcher:
    """A Searcher whose trials are made up from their settings: strategies tested without models."""
    def measure(steps, phase):
        return {"val_accuracy": accuracy_of(steps) if steps else 1.0, "agreement": 1.0,
                "speed_ms": speed_of(steps) if steps else 10.0, "quantized_layers": ["a", "b", "c"],
                "steps": [s.dump("method") for s in steps]}

    return Searcher(variant, 4, measure, [], lambda trials: None, lambda line: None)


def test_bisect_finds_the_largest_value_within_the_goal(write_scenario):
    variant = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.01}, strategy: bisect, param: sparsity, "
                                               "low: 0.1, high: 0.9, tolerance: 0.01}", "[{method: magnitude}]")
    searcher = fake_searcher(variant, lambda steps: 1.0 if steps[0].params.sparsity <= 0.62 else 0.5)
    outcome = searcher.run()
    assert outcome["met"] and 0.61 <= outcome["value"] <= 0.62
    assert searcher.chosen_steps(outcome)[0].params.sparsity == outcome["value"]
    assert [t["value"] for t in searcher.trials[1:3]] == [0.9, 0.1]  # the ends first
    none_meet = fake_searcher(variant, lambda steps: 0.5).run()
    assert not none_meet["met"] and len(none_meet["trials"]) == 3  # high and low both miss: no bisection


def test_grid_chooses_the_fastest_trial_that_meets_the_goal_and_stops_at_the_budget(write_scenario):
    variant = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.05}, strategy: grid}",
                               "[{method: magnitude, sparsity: [0.2, 0.4, 0.6, 0.8]}]")
    assert [a.values for a in variant.search.grid] == [(0.2, 0.4, 0.6, 0.8)]
    sparsity = lambda steps: steps[0].params.sparsity  # noqa: E731
    searcher = fake_searcher(variant, lambda s: 1.0 - sparsity(s) / 10, lambda s: 1.0 - sparsity(s))
    outcome = searcher.run()
    assert outcome["value"] == {"sparsity": 0.4} and outcome["met"]  # 0.6 drops 0.06; 0.4 is fastest within
    limited = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.05}, strategy: grid, max_trials: 2}",
                               "[{method: magnitude, sparsity: [0.2, 0.4, 0.6, 0.8]}]")
    outcome = fake_searcher(limited, lambda s: 1.0 - sparsity(s) / 10, lambda s: 1.0 - sparsity(s)).run()
    assert outcome["stopped_by"] == "max_trials" and len(outcome["trials"]) == 3 and outcome["value"] == {"sparsity": 0.4}


def test_grid_trials_tied_on_speed_are_decided_by_the_nearest_to_the_goal(write_scenario):
    """Trials whose samples the one rule cannot tell apart are tied: the more accurate one is chosen
    over one a little faster by its figure; a trial slower by the rule is not tied."""
    import numpy as np

    variant = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.05}, strategy: grid}",
                               "[{method: magnitude, sparsity: [0.2, 0.4, 0.6]}]")
    rng = np.random.default_rng(0)
    level = {0.2: 1.0, 0.4: 0.99, 0.6: 2.0}  # 0.4 a hair faster than 0.2 (noise), 0.6 twice as slow
    accuracy = {0.2: 0.99, 0.4: 0.97, 0.6: 1.0}

    def measure(steps, phase):
        sparsity = steps[0].params.sparsity if steps else None
        samples = list(rng.lognormal(np.log(level.get(sparsity, 10.0)), 0.2, 200))
        return {"val_accuracy": accuracy[sparsity] if steps else 1.0, "agreement": 1.0,
                "speed_ms": float(np.median(samples)), "samples_ms": samples, "quantized_layers": [],
                "steps": [s.dump("method") for s in steps]}

    outcome = Searcher(variant, 4, measure, [], lambda trials: None, lambda line: None).run()
    assert outcome["value"] == {"sparsity": 0.2}  # tied with the fastest (0.4), and nearer the goal's accuracy


def test_layer_fallback_adds_layers_most_sensitive_first_until_the_goal(write_scenario):
    variant = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback}",
                               "[int8_dynamic]")
    harm = {"a": 0.005, "b": 0.10, "c": 0.05}  # accuracy each layer loses when quantized

    def accuracy(steps):
        kept = steps[0].params.keep_float
        return 1.0 - sum(loss for layer, loss in harm.items() if layer not in kept)

    searcher = fake_searcher(variant, accuracy)
    outcome = searcher.run()
    fallback = [t["kept_float"] for t in searcher.trials if t["phase"] == "fallback"]
    assert fallback == [["b", "c"]]  # ["b"] alone was measured as a sensitivity trial
    assert outcome["met"] and outcome["kept_float"] == ["b", "c"]
    # Every layer in float would be the uncompressed model: never a trial; the closest is kept.
    harm["a"] = 0.02
    searcher = fake_searcher(variant, accuracy)
    outcome = searcher.run()
    assert not any(len(t.get("kept_float") or ()) == 3 for t in searcher.trials)
    assert not outcome["met"] and outcome["stopped_by"] == "done" and outcome["kept_float"] == ["b", "c"]
    limited = searched_variant(write_scenario, "{goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, "
                                               "max_trials: 3}", "[int8_dynamic]")
    outcome = fake_searcher(limited, accuracy).run()  # all quantized, then a and b alone: b in float is closest
    assert not outcome["met"] and outcome["stopped_by"] == "max_trials" and outcome["kept_float"] == ["b"]


@pytest.mark.parametrize("variant, message", [
    ("compress: [bf16]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback}",
     "variants[0].search.strategy: layer_fallback needs one compression step that can leave layers in float"),
    ("compress: [int8_dynamic]\n    search: {goal: {}, strategy: layer_fallback}",
     "variants[0].search.goal: give max_accuracy_drop, min_agreement, max_perplexity_increase, max_kld_mean or "
     "min_top1_agreement"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_perplexity_increase: -0.1}, strategy: layer_fallback}",
     "variants[0].search.goal.max_perplexity_increase"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_perplexity_increase: 0.1}, strategy: layer_fallback}",
     "variants[0].search.goal.max_perplexity_increase: model 'mlp' is a model judged by accuracy: use "
     "max_accuracy_drop or min_agreement"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: -1}, strategy: layer_fallback}",
     "variants[0].search.goal.max_accuracy_drop"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: .nan}, strategy: layer_fallback}",
     "variants[0].search.goal.max_accuracy_drop"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: anneal}",
     "variants[0].search.strategy"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, by: p42}",
     "variants[0].search.by"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, max_trials: 0}",
     "variants[0].search.max_trials"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, max_time_s: 1e12}",
     "variants[0].search.max_time_s"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, batch_size: 0}",
     "variants[0].search.batch_size"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, extra: 1}",
     "variants[0].search: unknown key 'extra'"),
    ("compress: [int8_dynamic]\n    search: [layer_fallback]", "variants[0].search"),
    ("compress: [{method: int8_dynamic, keep_float: ['1']}]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: layer_fallback}", "variants[0].compress[0].keep_float: layer_fallback chooses the layers"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: bisect, param: sparsity, "
     "low: 0.1, high: 0.5}", "variants[0].search.param: no compression step has a setting 'sparsity'"),
    ("compress: [{method: magnitude}]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: bisect, "
     "param: sparsity, low: 0.1, high: 1.5}", "variants[0].search.high: magnitude.sparsity"),
    ("compress: [{method: magnitude}]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: bisect, "
     "param: sparsity, low: 0.5, high: 0.1}", "variants[0].search.high: must be above low"),
    ("compress: [{method: magnitude}]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: bisect, "
     "param: sparsity}", "strategy bisect needs param, low and high"),
    ("compress: [{method: magnitude}, {method: channel}]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: bisect, param: sparsity, low: 0.1, high: 0.5}", "2 compression steps have a setting 'sparsity'"),
    ("compress: [int8_static]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: bisect, "
     "param: activation_observer, low: 0.1, high: 0.5}", "setting 'activation_observer' is not a number"),
    ("compress: [{method: magnitude}]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: grid}",
     "strategy grid needs a list of values"),
    ("compress: [{method: magnitude, sparsity: [0.3, 0.5]}]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: grid, param: sparsity}", "param, low and high are for strategy bisect"),
    ("compress: [{method: magnitude, sparsity: [0.3, 2.0]}]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: grid}", "variants[0].compress[0].sparsity: magnitude.sparsity: input should be less than 1"),
    ("compress: [int8_dynamic]\n    measure: {mode: offline}\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: layer_fallback}", "variants[0].measure.mode: a searched variant is timed in single_stream mode"),
    ("compress: [{method: magnitude, sparsity: [0.3, 0.5]}]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: grid, sensitivity: weights}", "variants[0].search.sensitivity: ranks layers for strategy layer_fallback"),
    ("backend: onnxruntime\n    compress: [ort_int8_static]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: layer_fallback, sensitivity: weights}", "variants[0].search.sensitivity: weights ranks torch modules, "
                                                         "and 'ort_int8_static' leaves nodes of an ONNX graph in float"),
    ("compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, strategy: layer_fallback, "
     "sensitivity: hessian}", "variants[0].search.sensitivity"),
    ("model: gpt2\n    dataset: pydoc\n    compress: [int8_dynamic]\n    search: {goal: {max_accuracy_drop: 0.01}, "
     "strategy: layer_fallback}", "variants[0].search.goal.max_accuracy_drop: model 'gpt2' is a generative decoder: "
                                  "use max_kld_mean, min_top1_agreement, max_perplexity_increase or min_agreement "
                                  "(greedy tokens)"),
])
def test_bad_search_blocks_are_one_line_errors(write_scenario, capsys, variant, message):
    path = write_scenario(f"model: {{name: mlp, hidden: [8]}}\nvariants:\n  - name: v\n    {variant}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_keep_float_names_a_layer_the_method_quantizes(tmp_path, write_scenario, run_quick):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nmeasure: {batch_sizes: [1]}\nvariants:\n"
                          "  - name: v\n    compress: [{method: int8_dynamic, keep_float: [nope]}]\n")
    status, _, err, results = run_quick(path)
    [v] = results["variants"]
    assert v["status"] == "failed" and "keep_float: 'nope' is not a layer it quantizes (those are:" in v["error"]


def test_a_damaged_trials_file_is_measured_again(tmp_path):
    from suite.run.run_folder import RunFolder

    folder = RunFolder(tmp_path)
    (tmp_path / "search").mkdir()
    for junk in ("{", "[1, 2]", '{"trials": [1, {"no": "key"}]}', "\u00ff"):
        (tmp_path / "search" / "v.json").write_text(junk)
        assert folder.search_trials("v") == []
    folder.save_search_trials("v", [{"key": "[]", "phase": "reference"}])
    assert folder.search_trials("v") == [{"key": "[]", "phase": "reference"}]
    shutil.rmtree(tmp_path / "search")
    assert folder.search_trials("v") == []


def test_each_keep_float_method_leaves_the_named_layer_in_float(write_scenario, run_quick):
    """torch's dynamic int8, PT2E and torchao's int8 weight-only by module name; ONNX Runtime's static
    quantizer by node name (its dynamic one quantized an excluded Gemm node all the same, so it takes
    no keep_float)."""
    import importlib.util

    ort = importlib.util.find_spec("onnxruntime") is not None
    head = "model: {name: mlp, hidden: [16]}\nmeasure: {batch_sizes: [1]}\nvariants:\n  - name: fp32\n"
    torch_variants = ("  - {name: dyn, compress: [{method: int8_dynamic, keep_float: ['1']}]}\n"
                      "  - {name: pt2e, compress: [{method: int8_static, keep_float: ['1']}]}\n"
                      "  - {name: torchao, compress: [{method: int8_weight_only, keep_float: ['1']}]}\n")
    ort_variants = "  - {name: ort-static, backend: onnxruntime, compress: [ort_int8_static]}\n" if ort else ""
    status, _, err, results = run_quick(write_scenario(head + torch_variants + ort_variants))
    assert status == 0, err
    found = {v["name"]: v for v in results["variants"]}
    for name in ("dyn", "pt2e", "torchao"):
        [record] = found[name]["compress_records"]
        assert record["quantized_layers"] == ["4"]  # Flatten, Linear "1", ReLU, Dropout, Linear "4"
        precision = {row["layer"]: row["precision"] for row in record["layers"]}
        assert precision["1"] in ("float32", "float") and precision["4"] in ("qint8", "int8", "Int8Tensor"), precision
    if not ort:
        pytest.skip("onnxruntime is not installed: its quantizers' keep_float not tested")
    for name, method in (("ort-static", "ort_int8_static"),):
        [record] = found[name]["compress_records"]
        nodes = record["quantized_layers"]
        assert len(nodes) == 2, nodes
        int8_before = sum(row["precision"] == "int8" for row in record["layers"])
        again = write_scenario(head + f"  - {{name: kept, backend: onnxruntime, compress: [{{method: {method}, "
                                      f"keep_float: ['{nodes[0]}']}}]}}\n", name=f"{name}.yaml")
        status, _, err, kept = run_quick(again)
        assert status == 0, err
        [record] = {v["name"]: v for v in kept["variants"]}["kept"]["compress_records"]
        assert record["quantized_layers"] == nodes[1:]
        assert sum(row["precision"] == "int8" for row in record["layers"]) == int8_before - 1


def test_a_decoder_search_judges_perplexity_and_greedy_tokens_on_the_validation_split(write_scenario, run_quick):
    path = write_scenario("""
        name: lm-search
        model: {name: gpt2_random, layers: 2, hidden: 32, heads: 2, context: 64, vocab: 300}
        measure: {batch_sizes: [1], generate: {prompt_lens: [8], new_tokens: 4}}
        variants:
          - {name: fp32}
          - name: int8-auto
            compress: [int8_weight_only]
            search: {goal: {max_perplexity_increase: 10.0, min_agreement: 0.0}, strategy: layer_fallback, max_trials: 3}
        """)
    status, out, err, results = run_quick(path, "--in-process")
    assert status == 0, out + err
    fp32, searched = results["variants"]
    assert searched["status"] == "ok", searched["error"]
    search = searched["search"]
    reference, every = search["trials"][:2]
    assert search["split"] == "validation" and reference["phase"] == "reference" and reference["agreement"] == 1.0
    assert every["phase"] == "all quantized" and every["meets"] and search["met"] and search["chosen"] == 1
    assert all(t["perplexity"] > 1 and t["speed_ms"] > 0 and t.get("val_accuracy") is None for t in search["trials"])
    # The trials were scored on the validation split, the variants on the test split.
    assert fp32["generation"]["perplexity"]["split"] == "test"
    assert reference["perplexity"] != pytest.approx(fp32["generation"]["perplexity"]["perplexity"], rel=1e-9)
    # int8 weight-only quantized the GPT-2 projections it names, which keep_float could leave in float.
    layers = searched["compress_records"][0]["quantized_layers"]
    assert layers and all(name.startswith(("transformer.h.", "lm_head")) for name in layers)
    assert "val perplexity" in out + err


def test_a_decoder_search_bounds_the_kl_divergence_from_the_reference_trial(write_scenario, run_quick):
    """The reference trial keeps its summary of the validation split; each later trial's divergence
    from it is the goal's figure: 2-bit weights miss a tight bound, and the fallback keeps layers
    in float until a trial meets it (every layer in float: divergence 0)."""
    path = write_scenario("""
        name: lm-kld
        model: {name: gpt2_random, layers: 2, hidden: 32, heads: 2, context: 80, vocab: 300}
        measure: {batch_sizes: [1], generate: {prompt_lens: [8], new_tokens: 4}}
        variants:
          - name: int2-auto
            compress: [{method: intx_weight_only, bits: 2, group_size: 0}]
            search: {goal: {max_kld_mean: 0.0, min_top1_agreement: 1.0}, strategy: layer_fallback, max_trials: 3}
        """)
    status, out, err, results = run_quick(path, "--in-process")
    assert status == 0, out + err
    trials = results["variants"][0]["search"]["trials"]
    reference, every = trials[:2]
    assert reference["kld_mean"] == 0 and reference["top1_agreement"] == 1
    assert every["kld_mean"] > 0 and not every["meets"]
    assert all(t["kld_mean"] is not None and 0 <= t["top1_agreement"] <= 1 for t in trials)
    assert "KL divergence" in out + err


def test_weights_sensitivity_ranks_a_decoders_layers_on_validation_tokens(write_scenario, run_quick):
    # 2-bit weights on a random GPT-2: every layer quantized misses the goal, so the fallback runs.
    path = write_scenario("""
        name: lm-rank
        model: {name: gpt2_random, layers: 2, hidden: 32, heads: 2, context: 48, vocab: 300}
        measure: {batch_sizes: [1], generate: {prompt_lens: [8], new_tokens: 4, fidelity_tokens: 16}}
        variants:
          - name: int8-auto
            compress: [{method: intx_weight_only, bits: 2, group_size: 0}]
            search: {goal: {max_perplexity_increase: 0.0, min_agreement: 1.0}, strategy: layer_fallback,
                     max_trials: 3, sensitivity: weights}
        """)
    status, out, err, results = run_quick(path, "--in-process")
    assert status == 0, out + err
    [searched] = results["variants"]
    search = searched["search"]
    layers = search["ranking"]["errors"]
    assert all(error is not None and error > 0 for error in layers.values())  # on windows of 48 tokens: the context
    ranked = sorted(layers, key=layers.get, reverse=True)
    fallbacks = [t for t in search["trials"] if t["phase"] == "fallback"]
    assert [t["kept_float"] for t in fallbacks] == [ranked[:1], ranked[:2]]  # the largest errors first
    assert not any(t["phase"] == "sensitivity" for t in search["trials"])
