"""Every backend says whether it can run here and why not; those that can run give the eager
model's outputs; the ONNX form and ONNX Runtime's int8 methods record what they did; steps and
backends that cannot go together are refused before anything runs."""

import importlib.util

import numpy as np
import pytest
import torch

from suite.compress import compress
from suite.config.scenario import load
from suite.errors import ScenarioError
from suite.formats import onnx_model
from suite.measure import quality
from suite.registry import BACKENDS
from tests.test_compress import context, step
from tests.test_compress import load as load_model

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra (onnx, onnxscript, onnxruntime)")


def backend(name, **params):
    from tests.test_contracts import REQUIRED_SETTINGS

    cls = BACKENDS.get(name)
    return cls(cls.Params(**{**REQUIRED_SETTINGS.get(name, {}), **params}))


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_says_if_it_can_run_here(name):
    instance = backend(name)
    reason = instance.available()
    assert reason is None or (isinstance(reason, str) and reason)
    assert "torch" in instance.takes and instance.description


def run_outputs(name, model, data, **params):
    instance = backend(name, **params)
    if instance.available():
        pytest.skip(instance.available())
    run = instance.prepare(model, data.test.x[:1], data.train.x)
    return instance, quality.outputs(run, instance.place, instance.to_host, data.test.x[:40], 16)


@pytest.mark.parametrize("name", ["compile", "onnxruntime", "openvino"])
@pytest.mark.parametrize("key", ["cnn", "lstm_tokens"])
def test_backend_outputs_match_eager(name, key):
    model, data, _ = load_model(key)
    reference = quality.outputs(lambda x: model.eval()(x), lambda x: x, lambda y: y.detach().numpy(), data.test.x[:40], 16)
    instance, outputs = run_outputs(name, model, data)
    fidelity = quality.agreement(outputs, reference)
    assert fidelity["top1"] == 1.0 and fidelity["max_abs_error"] < 1e-3 and fidelity["cosine_min"] > 0.9999
    if name != "compile":  # the older exporter only as a fallback, with the reason recorded
        info = instance.describe()
        assert info["export_s"] > 0 and (info["exporter"], bool(info["onnx_notes"])) in {("dynamo", False), ("torchscript", True)}


@needs_onnx
def test_token_models_export_with_dynamic_batch_and_length():
    import onnxruntime as ort

    model, data, _ = load_model("lstm_tokens")
    exported = onnx_model.to_onnx(model, data.test.x[:1])
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    for batch, length in ((1, 5), (3, 40)):
        ids = torch.randint(1, 50, (batch, length))
        out = session.run(None, {"input": ids.numpy()})[0]
        assert np.allclose(out, model(ids).detach().numpy(), atol=1e-4)


@needs_onnx
def test_the_older_exporter_is_used_when_dynamo_fails_and_the_results_say_why(monkeypatch):
    def broken(*args):
        raise RuntimeError("cannot trace this\nsecond line")

    monkeypatch.setattr(onnx_model, "_export_dynamo", broken)
    model, data, _ = load_model("mlp")
    exported = onnx_model.to_onnx(model, data.test.x[:1])
    assert exported.exporter == "torchscript"
    assert exported.notes == ("dynamo exporter failed (RuntimeError: cannot trace this)",)


@needs_onnx
def test_onnx_footprint_counts_the_weights_of_the_torch_model():
    model, data, _ = load_model("cnn")
    exported = onnx_model.to_onnx(model, data.test.x[:1])
    assert exported.weight_count() == sum(p.numel() for p in model.parameters())
    assert 4 * exported.weight_count() <= exported.size_bytes() < 4 * exported.weight_count() + 16 * 2**10  # + the graph


@needs_onnx
def test_ort_static_int8_quantizes_every_conv_and_linear_with_int8_inputs():
    model, data, spec = load_model("cnn")
    quantized, record = compress(model, step("ort_int8_static", calibration_batches=2), context(data, spec))
    assert {(row["type"], row["precision"], row["input"]) for row in record["layers"]} == {
        ("Conv", "int8", "int8"), ("Gemm", "int8", "int8")}
    assert len(record["layers"]) == 4  # two convolutions, two linear layers
    assert record["after"]["size_bytes"] < 0.65 * record["before"]["size_bytes"]  # the graph grows: QDQ nodes
    assert record["after"]["weights"] == record["before"]["weights"]  # scales are not weights
    assert any("calibrated (minmax) on 2 training batches" in note for note in record["notes"])
    _, outputs = run_outputs("onnxruntime", quantized, data)
    assert quality.accuracy(outputs, data.test.y[:40]) >= 0.0 and outputs.shape == (40, data.num_classes)


@needs_onnx
def test_ort_dynamic_int8_makes_integer_matmuls_and_quantizes_embeddings():
    model, data, spec = load_model("bert_small")
    _, record = compress(model, step("ort_int8_dynamic"), context(data, spec))
    kinds = {(row["type"], row["precision"]) for row in record["layers"]}
    assert ("MatMulInteger", "int8") in kinds and ("Gather", "uint8") in kinds
    assert not any(row["precision"] == "float32" for row in record["layers"] if row["type"] == "MatMulInteger")


def test_openvino_records_the_precisions_it_really_runs_in():
    model, data, _ = load_model("cnn")
    instance, _ = run_outputs("openvino", model, data)
    precisions = instance.describe()["runtime_precisions"]
    assert list(precisions) == ["f32"] and precisions["f32"] >= 2  # layers OpenVINO may fuse


def test_an_fp32_openvino_variant_that_runs_in_bf16_fails(monkeypatch):
    from suite.backends import openvino

    monkeypatch.setattr(openvino, "runtime_precisions", lambda compiled: {"bf16": 3, "f32": 1})
    model, data, _ = load_model("mlp")
    with pytest.raises(RuntimeError, match="OpenVINO compiled an f32 variant with layers in bf16"):
        run_outputs("openvino", model, data)


SCENARIO = """
model: {{name: mlp, hidden: [8]}}
dataset: digits
variants:
  - name: a
    backend: {backend}
    compress: {steps}
"""


@pytest.mark.parametrize("backend_name, steps, message", [
    ("eager", "[ort_int8_dynamic]", "variants[0].backend: backend 'eager' cannot run an int8 ONNX model, which compress "
                                    "step 'ort_int8_dynamic' makes"),
    ("onnxruntime", "[int8_dynamic]", "variants[0].backend: backend 'onnxruntime' cannot run a torch model that "
                                      "neither ONNX export nor torch.compile can take, which compress step "
                                      "'int8_dynamic' makes"),
    ("compile", "[int8_dynamic]", "backend 'compile' cannot run a torch model that neither ONNX export nor "
                                  "torch.compile can take, which compress step 'int8_dynamic' makes"),
    ("onnxruntime", "[int8_static]", "backend 'onnxruntime' cannot run a torch model that ONNX export cannot take, "
                                     "which compress step 'int8_static' makes"),
    ("onnxruntime", "[ort_int8_static, finetune]", "variants[0].compress[1].method: 'finetune' cannot start from an "
                                                   "int8 ONNX model, which 'ort_int8_static' makes"),
])
def test_steps_and_backends_that_do_not_fit_are_refused_on_load(write_scenario, backend_name, steps, message):
    with pytest.raises(ScenarioError) as caught:
        load(write_scenario(SCENARIO.format(backend=backend_name, steps=steps)))
    assert str(caught.value).endswith(message)


@needs_onnx
def test_backend_override_runs_every_variant_there_and_skips_what_it_cannot(write_scenario, run_quick):
    text = """
    model: {name: mlp, hidden: [8]}
    dataset: digits
    measure: {batch_sizes: [2]}
    variants:
      - {name: fp32}
      - {name: ort-int8, backend: onnxruntime, compress: [ort_int8_dynamic]}
      - {name: ort, backend: onnxruntime}
    """
    status, _, _, results = run_quick(write_scenario(text), "--backend", "eager")
    assert status == 0
    fp32, int8, ort = results["variants"]
    assert fp32["status"] == "ok" and fp32["backend"] == "eager"
    assert int8["status"] == "skipped" and "cannot run an int8 ONNX model" in int8["error"]
    assert ort["status"] == "skipped" and ort["error"] == "with --backend eager it is the same as variant 'fp32'"
    status, _, _, results = run_quick(write_scenario(text), "--backend", "onnxruntime")
    assert status == 0 and [v["status"] for v in results["variants"]] == ["ok", "ok", "skipped"]
    assert results["variants"][0]["backend_info"]["providers"] == ["CPUExecutionProvider"]
    assert results["variants"][1]["fidelity"]["max_abs_error"] > 0


def test_unknown_override_backend_is_a_one_line_error(write_scenario, run_quick):
    status, _, err, _ = run_quick(write_scenario(SCENARIO.format(backend="eager", steps="[]")), "--backend", "onnxrt")
    assert status == 2 and "--backend: unknown backend 'onnxrt' (did you mean onnxruntime?)" in err


def test_agreement_measures_on_known_outputs():
    reference = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    outputs = np.array([[1.0, 0.1], [0.5, 0.0], [3.0, 4.0]], dtype=np.float32)
    fidelity = quality.agreement(outputs, reference)
    assert fidelity["top1"] == pytest.approx(2 / 3)
    assert fidelity["max_abs_error"] == pytest.approx(2.0)
    assert fidelity["cosine_min"] == pytest.approx(0.0, abs=1e-7)  # [0.5, 0] against [0, 2]
    assert fidelity["cosine_mean"] == pytest.approx((1 / np.sqrt(1.01) + 0 + 1) / 3)
