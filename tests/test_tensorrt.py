"""TensorRT: what can be checked without it (availability, engine cache keys, calibration
batches, the settings mapping, the export it reads) runs everywhere; building and running
engines runs wherever `import tensorrt` works and a CUDA device is present (never in this
project's own CI, which has neither)."""

import importlib.util

import pytest
import torch

from suite.backends.tensorrt import PRECISION_FLAGS, TensorRtBackend, TensorRtParams, cache_key, calibration_batches
from suite.measure import quality
from tests.test_compress import load as load_model

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()
needs_tensorrt = pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT and a CUDA device")


def test_absence_of_tensorrt_is_reported_with_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = TensorRtBackend(TensorRtParams()).available()
    assert reason.startswith("tensorrt is not installed (pip install -c constraints.txt '.[tensorrt]'")
    reason = TensorRtBackend(TensorRtParams(route="torch_tensorrt")).available()
    assert reason.startswith("torch_tensorrt is not installed")


def test_int8_through_torch_tensorrt_points_to_the_onnx_route(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    reason = TensorRtBackend(TensorRtParams(route="torch_tensorrt", precision="int8")).available()
    assert "use route 'onnx'" in reason


def test_cache_key_changes_with_everything_an_engine_depends_on():
    parts = dict(model_bytes=b"onnx", settings={"precision": "fp16"}, shape=(1, 3, 8, 8), dtype="float32",
                 trt_version="10.9", gpu="NVIDIA H100 sm_90")
    base = cache_key(**parts)
    assert base == cache_key(**parts) and len(base) == 32
    changes = dict(model_bytes=b"onnx2", settings={"precision": "int8"}, shape=(8, 3, 8, 8), dtype="int64",
                   trt_version="10.10", gpu="NVIDIA A100 sm_80")
    for key, value in changes.items():
        assert cache_key(**{**parts, key: value}) != base, key


def test_calibration_batches_are_full_batches_of_the_engine_size():
    inputs = torch.arange(100 * 4, dtype=torch.float32).reshape(100, 4)
    batches = calibration_batches(inputs, TensorRtParams(calibration_batches=16), (32, 4))
    assert [b.shape for b in batches] == [(32, 4)] * 3  # 100 inputs: three full batches of 32
    assert batches[1][0, 0] == 32 * 4 and batches[0].flags["C_CONTIGUOUS"]
    assert len(calibration_batches(inputs, TensorRtParams(calibration_batches=2), (8, 4))) == 2
    with pytest.raises(ValueError, match="needs at least 128 training inputs, got 100"):
        calibration_batches(inputs, TensorRtParams(), (128, 4))


def test_precisions_map_to_builder_flags():
    assert PRECISION_FLAGS == {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}
    assert set(PRECISION_FLAGS) == set(TensorRtParams.model_fields["precision"].annotation.__args__)


@needs_tensorrt
@pytest.mark.parametrize("precision, min_agreement", [("fp32", 1.0), ("fp16", 0.97), ("int8", 0.9)])
def test_engine_outputs_follow_eager(tmp_path, precision, min_agreement):
    model, data, _ = load_model("cnn")
    reference = model.eval()(data.test.x[:64]).detach().numpy()
    backend = TensorRtBackend(TensorRtParams(precision=precision, cache_dir=tmp_path))
    run = backend.prepare(model, data.test.x[:1], data.train.x)
    outputs = quality.outputs(run, backend.place, backend.to_host, data.test.x[:64], 32)
    assert quality.agreement(outputs, reference)["top1"] >= min_agreement
    assert backend.describe()["build_s"] > 0 and list(tmp_path.glob("*.engine"))


@needs_tensorrt
def test_a_second_prepare_reads_the_cached_engine(tmp_path):
    model, data, _ = load_model("mlp")
    for expected_cached in (0, 1):
        backend = TensorRtBackend(TensorRtParams(cache_dir=tmp_path))
        run = backend.prepare(model, data.test.x[:1], data.train.x)
        run(backend.place(data.test.x[:8]))
        assert backend.cached_engines == expected_cached



@needs_tensorrt
def test_the_layer_profiler_gives_an_operator_table(tmp_path):
    from suite.measure import ops

    model, data, _ = load_model("cnn")
    backend = TensorRtBackend(TensorRtParams(cache_dir=tmp_path))
    run = backend.prepare(model, data.test.x[:1], data.train.x)
    inputs = backend.place(data.test.x[:8])
    run(inputs)
    found, wall, calls = backend.profile_ops(run, inputs, 5)
    table = ops.table(found, calls, wall)
    assert calls == 5 and wall > 0 and table["ops_ms"] > 0
    assert any(row["family"] == "convolution" for row in table["ops"]), [row["op"] for row in table["ops"]]


def test_route_torch_tensorrt_refuses_an_onnx_model_in_one_line(tmp_path):
    from suite.errors import SuiteError
    from suite.formats.onnx_model import OnnxModel

    onnx_model = OnnxModel(tmp_path / "m.onnx", "file", 0.0, tokens=False)
    with pytest.raises(SuiteError, match="route torch_tensorrt compiles torch models, and this one is ONNX: use route 'onnx'"):
        TensorRtBackend(TensorRtParams(route="torch_tensorrt")).prepare(onnx_model, torch.zeros(1, 1, 8, 8))


@needs_tensorrt
def test_an_onnx_file_with_external_data_runs_on_tensorrt(tmp_path, write_scenario, run_quick):
    from tests.test_onnx_file import accuracy_of, cnn, export

    export(cnn(), tmp_path / "cnn.onnx", batch=None, external=True)
    status, _, err, results = run_quick(write_scenario(
        "model: {name: onnx_file, path: cnn.onnx}\ndataset: digits\nmeasure: {batch_sizes: [1, 4]}\n"
        "variants: [{name: trt, backend: tensorrt}]\n"), "--in-process")
    assert status == 0, err
    [v] = results["variants"]
    assert v["status"] == "ok" and v["accuracy"] == pytest.approx(accuracy_of(cnn()), abs=0.01)


@needs_tensorrt
def test_an_onnx_file_with_two_outputs_runs_on_tensorrt_at_the_one_named(tmp_path, write_scenario, run_quick):
    from tests.test_onnx_file import accuracy_of, export_label_and_scores, mlp

    export_label_and_scores(tmp_path / "two.onnx")  # label (int64), then probabilities: each needs a buffer
    status, _, err, results = run_quick(write_scenario(
        "model: {name: onnx_file, path: two.onnx, output: probabilities}\ndataset: digits\n"
        "measure: {batch_sizes: [1, 4]}\nvariants: [{name: trt, backend: tensorrt}]\n"), "--in-process")
    assert status == 0, err
    [v] = results["variants"]
    assert v["status"] == "ok" and v["accuracy"] == pytest.approx(accuracy_of(mlp()), abs=0.01)
