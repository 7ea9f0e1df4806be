"""Scenario validation: one line per error, naming the file and the key path."""

import pytest

from suite.config.scenario import PluginRef, load
from suite.errors import ScenarioError

GOOD = """
model: {name: mlp, hidden: [32]}
measure: {batch_sizes: [1, 8]}
variants:
  - name: fp32
  - name: again
    backend: {name: eager, device: cpu}
"""

ERRORS = {
    "misspelt key": ("model: mlp\nmeasure: {batch_size: [1]}\nvariants: [{name: a}]\n",
                     "measure: unknown key 'batch_size' (did you mean batch_sizes or eval_batch_size?)"),
    "misspelt top-level key": ("model: mlp\nvariant: [{name: a}]\n",
                               "unknown key 'variant' (did you mean variants or max_variants?)"),
    "unknown model": ("model: mlpp\nvariants: [{name: a}]\n",
                      "model: unknown model 'mlpp' (did you mean mlp?)"),
    "unknown backend": ("model: mlp\nvariants: [{name: a}, {name: b, backend: eagr}]\n",
                        "variants[1].backend: unknown backend 'eagr' (did you mean eager?)"),
    "unknown backend in a mapping": ("model: mlp\nvariants: [{name: b, backend: {name: eagr}}]\n",
                                     "variants[0].backend.name: unknown backend 'eagr' (did you mean eager?)"),
    "unknown dataset": ("model: mlp\ndataset: digitz\nvariants: [{name: a}]\n",
                        "dataset: unknown dataset 'digitz' (did you mean digits?)"),
    "unknown compression method": ("model: mlp\nvariants: [{name: a, compress: [{method: int3}]}]\n",
                                   "variants[0].compress[0].method: unknown compression method 'int3'"),
    "negative batch size": ("model: mlp\nmeasure: {batch_sizes: [1, -4]}\nvariants: [{name: a}]\n",
                            "measure.batch_sizes[1]: input should be greater than 0 (got -4)"),
    "wrong type": ("model: mlp\nseed: x\nvariants: [{name: a}]\n",
                   "seed: expected a whole number, got the string 'x'"),
    "wrong type of a model parameter": ("model: {name: mlp, hidden: lots}\nvariants: [{name: a}]\n",
                                        "model.hidden: input should be a valid list (got 'lots')"),
    "misspelt model parameter": ("variants: [{name: a, model: {name: mlp, hiden: [3]}}]\n",
                                 "variants[0].model: unknown key 'hiden' (did you mean hidden?)"),
    "bad backend option": ("model: mlp\nvariants: [{name: a, backend: {name: eager, device: tpu}}]\n",
                           "variants[0].backend.device: input should be 'auto', 'cpu' or 'cuda' (got 'tpu')"),
    "missing variant name": ("model: mlp\nvariants: [{backend: eager}]\n",
                             "variants[0].name: required key is missing"),
    "no variants": ("model: mlp\nvariants: []\n",
                    "variants: list should have at least 1 item after validation, not 0"),
    "duplicate variant": ("model: mlp\nvariants: [{name: a}, {name: a}]\n",
                          "variants[1].name: duplicate variant name 'a'"),
    "no model": ("variants: [{name: a}]\n", "variants[0].model: no model: set one here or at the top level"),
    "unknown baseline": ("model: mlp\nbaseline: fp23\nvariants: [{name: fp32}]\n",
                         "baseline: unknown variant 'fp23' (did you mean fp32?)"),
    "crossed bounds": ("model: mlp\nmeasure: {min_samples: 10, max_samples: 5}\nvariants: [{name: a}]\n",
                       "measure.min_samples: 10 exceeds max_samples (5)"),
    "not a mapping": ("- a\n- b\n", "expected a mapping of keys at the top level"),
    "invalid YAML": ("model: mlp\nvariants: [{name: a}\n", "invalid YAML: line 3, column 1: expected ',' or ']'"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_is_one_line_naming_file_and_key_path(write_scenario, case):
    text, expected = ERRORS[case]
    path = write_scenario(text)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {expected}")
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.yaml: file not found$"):
        load(tmp_path / "nope.yaml")


def test_missing_checkpoint_is_resolved_next_to_the_scenario(write_scenario, tmp_path):
    path = write_scenario("model: {name: mlp, checkpoint: weights.pt}\nvariants: [{name: a}]\n")
    with pytest.raises(ScenarioError, match=rf"model\.checkpoint: file not found: {tmp_path / 'weights.pt'}$"):
        load(path)
    (tmp_path / "weights.pt").write_bytes(b"")
    assert load(path).model.checkpoint == tmp_path / "weights.pt"


def test_valid_scenario_is_frozen_and_complete(write_scenario):
    scenario = load(write_scenario(GOOD))
    assert scenario.name == "scenario"  # from the file name
    assert scenario.measure.batch_sizes == (1, 8)
    assert scenario.model == PluginRef("mlp", scenario.model.params)
    assert scenario.model.params.hidden == (32,)
    assert [v.backend.name for v in scenario.variants] == ["eager", "eager"]
    assert scenario.variants[1].backend.params.device == "cpu"
    assert scenario.model_of(scenario.variants[0]) is scenario.model
    with pytest.raises(Exception, match="frozen"):
        scenario.seed = 3


def test_dump_round_trips_through_validation(write_scenario):
    scenario = load(write_scenario(GOOD))
    dumped = scenario.model_dump(mode="json")
    assert dumped["model"] == {"name": "mlp", "hidden": [32], "dropout": 0.2}
    assert dumped["variants"][1]["backend"] == {"name": "eager", "device": "cpu"}
    assert type(scenario).model_validate(dumped).model_dump(mode="json") == dumped
