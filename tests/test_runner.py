"""Runner behaviour beyond the happy path: untrained models, unlabelled data, per-variant measure."""

from suite.config.scenario import load

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
    text = ("model: {name: mlp, hidden: [8]}\ndataset: {name: random, shape: [4], num_classes: 3, size: 4}\n"
            "variants: [{name: a}]\n")
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


def test_batch_of_pads_or_cuts_token_sequences_with_the_padding_id():
    import torch

    from suite.measure.measuring import batch_of

    tokens = torch.arange(1, 13).reshape(3, 4)
    assert batch_of(tokens, 2, seq_len=2).tolist() == [[1, 2], [5, 6]]
    assert batch_of(tokens, 4, seq_len=6).tolist() == [[1, 2, 3, 4, 0, 0], [5, 6, 7, 8, 0, 0],
                                                      [9, 10, 11, 12, 0, 0], [1, 2, 3, 4, 0, 0]]
    assert batch_of(tokens, 1).tolist() == [[1, 2, 3, 4]]


def test_latency_per_sequence_length_for_token_inputs(write_scenario, run_quick):
    text = """
    model: {name: lstm, hidden: 8, layers: 1}
    dataset: {name: topics, size: 80, seq_len: 16}
    measure: {batch_sizes: [1, 4], seq_lens: [8, 48]}
    variants: [{name: a}]
    """
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 0
    [v] = results["variants"]
    assert [(r["batch_size"], r["seq_len"]) for r in v["latency"]] == [(1, 8), (4, 8), (1, 48), (4, 48)]
    assert [(r["batch_size"], r["seq_len"]) for r in v["throughput"]] == [(1, 8), (4, 8), (1, 48), (4, 48)]


def test_sequence_lengths_on_inputs_that_are_not_tokens_fail_the_variant_in_one_line(write_scenario, run_quick):
    text = "model: {name: mlp, hidden: [8]}\nmeasure: {seq_lens: [16]}\nvariants: [{name: a}]\n"
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 2
    [v] = results["variants"]
    assert v["status"] == "failed" and v["error"].endswith("measure.seq_lens: dataset 'digits' is not token sequences")


def test_padding_does_not_change_token_models_outputs():
    """The padded inputs timed at longer lengths are the same sentences: the models mask the padding.
    (Not so for a bidirectional LSTM, whose backward pass reads the padding first.)"""
    import torch

    from models.nets.bert import from_config
    from models.nets.lstm import LSTMClassifier
    from suite.measure.measuring import batch_of

    torch.manual_seed(0)
    tokens = torch.randint(1, 100, (3, 10))
    tokens[:, 7:] = 0  # already padded from 7 on, as the tokenizer leaves short sentences
    for model in (from_config(100, 4, layers=1, hidden=16, heads=2, seq_len=10),
                  LSTMClassifier(features=8, hidden=8, layers=1, bidirectional=False, num_classes=4, vocab_size=100)):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(batch_of(tokens, 3, 40)), model(tokens), atol=1e-5, rtol=1e-4)
