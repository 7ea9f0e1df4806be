"""Runner behaviour beyond the happy path: untrained models, unlabelled data, per-variant measure."""

from suite.scenario import load

TINY_IMAGENET = "{name: resnet_imagenet, depth: 18, width: 8}"
RANDOM_SMALL = "{name: random, shape: [3, 64, 64], num_classes: 10, size: 4}"


def test_untrained_model_reports_null_accuracy_with_reason_and_still_agreement(write_scenario, run_quick):
    text = f"""
    model: {TINY_IMAGENET}
    dataset: {RANDOM_SMALL}
    measure: {{batch_sizes: [2]}}
    variants: [{{name: a}}, {{name: b, backend: {{name: eager, device: cpu}}}}]
    """
    status, _, err, results = run_quick(write_scenario(text))
    assert status == 0
    for v in results["variants"]:
        assert v["status"] == "ok"
        assert v["accuracy"] is None and v["accuracy_reason"] == "untrained"
        assert v["weights"] == {"source": "untrained", "init_seed": 0}
        assert v["dataset"]["labelled"] is False
    assert results["variants"][1]["agreement"] == 1.0  # same random weights, same inputs
    assert "untrained" in err


def test_training_on_unlabelled_data_is_a_user_error(write_scenario, run_quick):
    text = "model: {name: mlp, hidden: [8]}\ndataset: {name: random, shape: [4], num_classes: 3, size: 4}\nvariants: [{name: a}]\n"
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 2
    [variant] = results["variants"]
    assert variant["status"] == "failed" and variant["error_type"] == "SuiteError"
    assert "needs training, but dataset 'random' has no labels" in variant["error"]


def test_variant_measure_overrides_key_by_key(write_scenario, run_quick):
    text = """
    model: {name: mlp, hidden: [8]}
    measure: {batch_sizes: [1, 2], eval_batch_size: 64, threads: 1}
    variants:
      - name: a
      - name: b
        measure: {batch_sizes: [3]}
    """
    scenario = load(write_scenario(text))
    a, b = (scenario.measure_of(v) for v in scenario.variants)
    assert (a.batch_sizes, b.batch_sizes) == ((1, 2), (3,))
    assert b.eval_batch_size == 64 and b.threads == 1  # inherited
    _, _, _, results = run_quick(write_scenario(text))
    assert [[row["batch_size"] for row in v["latency"]] for v in results["variants"]] == [[1, 2], [3]]
    assert {v["backend_info"]["threads"] for v in results["variants"]} == {1}


def test_variant_measure_errors_name_the_variant(write_scenario):
    import pytest

    from suite.errors import ScenarioError

    text = "model: mlp\nvariants: [{name: a}, {name: b, measure: {min_sample: 3}}]\n"
    with pytest.raises(ScenarioError, match=r"variants\[1\]\.measure: unknown key 'min_sample' \(did you mean min_samples"):
        load(write_scenario(text))


def test_cifar_resnet_depth_must_be_six_n_plus_two(write_scenario):
    import pytest

    from suite.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"model\.depth: depth must be 6n\+2 and at least 8 .* got 18$"):
        load(write_scenario("model: {name: resnet, depth: 18}\nvariants: [{name: a}]\n"))
