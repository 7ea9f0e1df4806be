"""Every compression method on every small reference model it applies to: the model still runs,
the record says what happened, sparsity and size are what the method claims; inapplicable
combinations give one clear error; steps apply in the order listed."""

import pytest
import torch

from suite.compress import CompressContext, compress
from suite.config.scenario import PluginRef
from suite.errors import SuiteError
from suite.registry import DATASETS, METHODS, MODELS

SMALL_MODELS = {
    "mlp": ("mlp", {"hidden": [32]}, "digits", {}),
    "cnn": ("cnn", {"channels": [8, 16], "hidden": 32}, "digits", {}),
    "resnet": ("resnet", {"depth": 8, "width": 8}, "digits", {}),
    "lstm": ("lstm", {"hidden": 8, "layers": 1}, "digits_rows", {}),
    "lstm_tokens": ("lstm", {"hidden": 8, "layers": 1}, "topics", {"size": 80, "seq_len": 12}),
    "bert_small": ("bert_small", {"layers": 1, "hidden": 16, "heads": 2}, "topics", {"size": 80, "seq_len": 12}),
}
# Methods that run on CPU; semi_structured_2_4 and int4_weight_only are checked for their reasons.
CPU_METHODS = ["int8_dynamic", "int8_static", "int8_weight_only", "int8_dynamic_activation", "intx_weight_only", "fp16",
               "bf16", "magnitude", "channel", "finetune"]
# Torch-Pruning cannot trace nn.LSTM's packed weights: the method must say so in one line.
INAPPLICABLE = {("channel", "lstm"): "Torch-Pruning could not prune this model",
                ("channel", "lstm_tokens"): "Torch-Pruning could not prune this model",
                # their heads are 8 wide: no input width is a multiple of the default group of 64
                **{("intx_weight_only", key): "no Linear layer's input width is a multiple of group_size 64"
                   for key in ("resnet", "lstm", "lstm_tokens")}}


def load(key):
    model_name, model_params, data_name, data_params = SMALL_MODELS[key]
    data_spec = DATASETS.get(data_name)
    try:
        data = data_spec.load(data_spec.Params(**data_params))
    except SuiteError as missing:  # an optional extra (bert) is not installed
        pytest.skip(str(missing))
    spec = MODELS.get(model_name)
    torch.manual_seed(0)
    return spec.build(spec.Params(**model_params), data), data, spec


def context(data, spec):
    return CompressContext(data=data, seed=0, train_recipe=spec.train or {}, max_epochs=1, max_batches=2)


def step(method, **params):
    return PluginRef(method, METHODS.get(method).Params(**params))


@pytest.mark.parametrize("key", list(SMALL_MODELS))
@pytest.mark.parametrize("method", CPU_METHODS)
def test_every_method_on_every_model(method, key):
    model, data, spec = load(key)
    if (method, key) in INAPPLICABLE:
        with pytest.raises(SuiteError, match=f"^compress: {method}: {INAPPLICABLE[method, key]}"):
            compress(model, step(method), context(data, spec))
        return
    out, record = compress(model, step(method), context(data, spec))
    out.eval()
    with torch.no_grad():
        logits = out(data.test.x[:5])
    assert logits.shape == (5, data.num_classes) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert record["method"] == method and record["params"] == METHODS.get(method).Params().model_dump(mode="json")
    assert record["before"]["size_bytes"] > 0 and record["after"]["size_bytes"] > 0
    assert record["layers"], "the per-layer table is empty"


def prunable_sparsity(model):
    weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@pytest.mark.parametrize("sparsity", [0.3, 0.7])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reaches_its_sparsity_and_leaves_no_mask(sparsity, scope):
    model, data, spec = load("cnn")
    out, record = compress(model, step("magnitude", sparsity=sparsity, scope=scope), context(data, spec))
    assert prunable_sparsity(out) == pytest.approx(sparsity, abs=0.002)
    assert not any(name.endswith(("_orig", "_mask")) for name, _ in out.named_parameters())
    assert not any(name.endswith("_mask") for name, _ in out.named_buffers())
    assert record["after"]["sparsity"] > record["before"]["sparsity"]
    if scope == "layer":
        assert all(row["sparsity"] == pytest.approx(sparsity, abs=0.02)
                   for row in record["layers"] if row["type"] in ("Conv2d", "Linear"))


def test_channel_pruning_really_removes_channels():
    model, data, spec = load("cnn")
    out, record = compress(model, step("channel", sparsity=0.5), context(data, spec))
    convs = [m for m in out.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8]  # from 8 and 16
    assert out.classifier[-1].out_features == data.num_classes  # the class scores stay
    assert record["after"]["weights"] < 0.4 * record["before"]["weights"]
    assert record["after"]["size_bytes"] < 0.4 * record["before"]["size_bytes"]


def test_finetune_keeps_pruned_weights_at_zero():
    model, data, spec = load("cnn")
    ctx = context(data, spec)
    pruned, _ = compress(model, step("magnitude", sparsity=0.6), ctx)
    zeros = [(m.weight == 0).clone() for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    before = [m.weight.detach().clone() for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    tuned, record = compress(pruned, step("finetune", epochs=2, lr=0.01), ctx)
    after = [m.weight for m in tuned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert all((w[mask] == 0).all() for w, mask in zip(after, zeros, strict=False))
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=False)), "fine-tuning changed nothing"
    assert record["training"]["epochs_run"] == 1  # max_epochs of the quick context


def test_int8_quantization_stores_int8_weights_and_shrinks_the_model():
    model, data, spec = load("mlp")
    out, record = compress(model, step("int8_dynamic"), context(data, spec))
    assert {row["precision"] for row in record["layers"]} == {"qint8"}
    assert record["after"]["size_bytes"] < 0.75 * record["before"]["size_bytes"]  # scales and biases stay float


def test_int8_static_table_says_which_ops_are_int8():
    model, data, spec = load("cnn")
    _, record = compress(model, step("int8_static", calibration_batches=2), context(data, spec))
    rows = {row["layer"]: row for row in record["layers"]}
    assert rows["features.0"]["precision"] == "int8" and rows["features.2"]["precision"] == "int8"
    assert rows["features.2"]["input"] == "int8"
    assert any("backend 'compile'" in note for note in record["notes"])


def test_steps_apply_in_the_order_listed():
    """Pruning then int8 leaves int8 weights with the zeros in them; the records come in order."""
    model, data, spec = load("mlp")
    ctx = context(data, spec)
    model, first = compress(model, step("magnitude", sparsity=0.5), ctx)
    model, second = compress(model, step("int8_dynamic"), ctx)
    assert (first["method"], second["method"]) == ("magnitude", "int8_dynamic")
    assert second["before"] == first["after"]
    assert {row["precision"] for row in second["layers"]} == {"qint8"}
    assert second["after"]["sparsity"] == pytest.approx(first["after"]["sparsity"], abs=0.02)
    with pytest.raises(SuiteError, match="^compress: finetune: nothing to train: fine-tune before quantizing"):
        compress(model, step("finetune"), ctx)


def test_a_model_without_the_layers_a_method_needs_is_a_clear_error():
    data_spec = DATASETS.get("digits")
    data = data_spec.load(data_spec.Params())
    conv_only = torch.nn.Sequential(torch.nn.Conv2d(1, 10, 8), torch.nn.Flatten())
    with pytest.raises(SuiteError, match=r"^compress: int8_dynamic: the model has no Linear / LSTM / GRU layer to quantize$"):
        compress(conv_only, step("int8_dynamic"), CompressContext(data=data, seed=0, train_recipe={}))


def test_gpu_only_methods_give_their_reason_on_cpu():
    assert "NVIDIA GPUs only" in METHODS.get("semi_structured_2_4").unavailable("cpu")
    assert "mslk" in METHODS.get("int4_weight_only").unavailable("cpu")


def test_two_of_four_keeps_the_two_largest_of_every_four():
    from suite.compress.prune import two_of_four

    weight = torch.tensor([[0.1, -0.9, 0.5, 0.2, 3.0, 0.0, -0.1, -4.0]])
    expected = torch.tensor([[0.0, -0.9, 0.5, 0.0, 3.0, 0.0, 0.0, -4.0]])
    assert torch.equal(two_of_four(weight), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_semi_structured_on_gpu():
    model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)).half()
    data = type("Data", (), {})()
    out, record = compress(model, step("semi_structured_2_4"), CompressContext(data=data, seed=0, train_recipe={}, device="cuda"))
    with torch.no_grad():
        assert out(torch.randn(64, 128, device="cuda", dtype=torch.half)).shape == (64, 64)
    assert record["notes"] == []
