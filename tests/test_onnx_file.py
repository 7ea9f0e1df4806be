"""Your own ONNX file (`{name: onnx_file, path: ...}`), on small files made here: an MLP and a small
CNN exported by torch (the CNN with a fixed batch and its weights in an external-data file), and
broken files of every kind. Accuracy is compared with the original torch model's on the same test
split: equal only if the file really carried the model."""

import importlib.util

import numpy as np
import pytest
import torch

from suite.config.scenario import load
from suite.errors import ScenarioError
from suite.registry import DATASETS

pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
                                reason="needs the onnx extra")


def digits_test():
    digits = DATASETS.get("digits")
    return digits.load(digits.Params()).test


def accuracy_of(model) -> float:
    test = digits_test()
    with torch.inference_mode():
        return (model(test.x).argmax(-1) == test.y).float().mean().item()


def mlp():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)).eval()


def cnn():
    torch.manual_seed(4)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 64, 10)).eval()


def export(model, path, batch: int | None, external: bool = False) -> None:
    """The model to ONNX with torch's TorchScript exporter: input 'pixels', output 'logits', the
    batch axis dynamic unless `batch`; with `external`, the weights in 'weights.bin' next to it."""
    import onnx

    axes = None if batch else {"pixels": {0: "n"}, "logits": {0: "n"}}
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(batch or 2, 1, 8, 8),), str(path), dynamo=False, opset_version=17,
                          input_names=["pixels"], output_names=["logits"], dynamic_axes=axes)
    if external:
        proto = onnx.load(str(path))
        onnx.save(proto, str(path), save_as_external_data=True,
                  location="weights.bin", size_threshold=0)


def scenario(path, variants: str, batch_sizes: str = "[1, 4]") -> str:
    return (f"model: {{name: onnx_file, path: {path}}}\ndataset: digits\nmeasure: {{batch_sizes: {batch_sizes}}}\n"
            f"variants:\n{variants}")


ON_ONNX_BACKENDS = """  - {name: ort, backend: onnxruntime}
  - {name: ort-int8-static, backend: onnxruntime, compress: [{method: ort_int8_static, calibration_batches: 4}]}
  - {name: ort-int8-dynamic, backend: onnxruntime, compress: [ort_int8_dynamic]}
  - {name: openvino, backend: openvino}
"""


def test_an_onnx_file_runs_on_the_onnx_backends_with_ort_int8_and_its_folder_is_left_alone(
        write_scenario, tmp_path, run_quick):
    pytest.importorskip("openvino")
    folder = tmp_path / "mine"
    folder.mkdir()
    export(mlp(), folder / "mlp.onnx", batch=None)
    before = sorted(p.name for p in folder.iterdir())
    status, _, err, results = run_quick(write_scenario(scenario("mine/mlp.onnx", ON_ONNX_BACKENDS)), "--in-process")
    assert status == 0, err
    ort, static, dynamic, openvino = results["variants"]
    expected = accuracy_of(mlp())
    for v in (ort, openvino):
        assert v["status"] == "ok", v["error"]
        assert v["accuracy"] == pytest.approx(expected, abs=1e-6)  # one sample moves it by >= 1e-3
        assert v["agreement"] == 1.0 and v["weights"]["source"] == "provided"
        assert [row["batch_size"] for row in v["latency"]] == [1, 4]
        assert "the user's own ONNX file mlp.onnx" in v["backend_info"]["onnx_notes"]
        assert v["params"] == 64 * 16 + 16 + 16 * 10 + 10
    for v in (static, dynamic):
        assert v["status"] == "ok", v["error"]
        assert v["agreement"] > 0.9 and abs(v["accuracy"] - expected) < 0.05
        assert v["size_bytes"] < ort["size_bytes"]  # int8 weights
        assert not any("exported to ONNX" in note for note in v["compress_records"][0]["notes"])
    assert sorted(p.name for p in folder.iterdir()) == before  # quantized copies went elsewhere


def test_a_fixed_batch_and_external_data(write_scenario, tmp_path, run_quick):
    export(cnn(), tmp_path / "cnn.onnx", batch=4, external=True)
    assert (tmp_path / "weights.bin").stat().st_size > (tmp_path / "cnn.onnx").stat().st_size
    text = scenario("cnn.onnx", "  - {name: ort, backend: onnxruntime}\n"
                                "  - {name: int8, backend: onnxruntime, compress: [ort_int8_static]}\n", "[4]")
    status, _, err, results = run_quick(write_scenario(text), "--in-process")
    assert status == 0, err
    ort, int8 = results["variants"]
    assert ort["status"] == "ok" and int8["status"] == "ok", (ort["error"], int8["error"])
    assert ort["accuracy"] == pytest.approx(accuracy_of(cnn()), abs=1e-6)
    assert ort["size_bytes"] >= (tmp_path / "weights.bin").stat().st_size  # the external weights are counted
    assert int8["agreement"] > 0.9
    # Other batch sizes are refused when the scenario is read, naming the field.
    for sizes, field in (("[1, 4]", "measure.batch_sizes"), ("[4]\n  eval_batch_size: 8", "measure.eval_batch_size")):
        with pytest.raises(ScenarioError, match=rf"{field}: \d+: model 'onnx_file' has a fixed batch size of 4"):
            load(write_scenario(scenario("cnn.onnx", "  - {name: ort, backend: onnxruntime}\n", sizes)
                                .replace("measure: {batch_sizes: [4]\n  eval_batch_size: 8}",
                                         "measure: {batch_sizes: [4], eval_batch_size: 8}")))


def token_graph(path, seq) -> None:
    """A classifier of token ids (batch, seq): embeddings averaged over the sequence, then a product."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((31000, 8), np.float32), "emb"),
               numpy_helper.from_array(rng.standard_normal((8, 4), np.float32), "w")]
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["y"])]
    graph = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", seq])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_token_ids_run_at_each_length_a_dynamic_axis_takes_and_a_fixed_one_refuses_others(write_scenario, tmp_path,
                                                                                         run_quick):
    pytest.importorskip("transformers")  # the topics dataset's tokenizer
    pytest.importorskip("openvino")
    text = ("model: {name: onnx_file, path: FILE}\ndataset: topics\nmeasure: {batch_sizes: [1], seq_lens: [8, 32]}\n"
            "variants:\n  - {name: ort, backend: onnxruntime}\n  - {name: openvino, backend: openvino}\n")
    token_graph(tmp_path / "dynamic.onnx", "s")
    status, _, err, results = run_quick(write_scenario(text.replace("FILE", "dynamic.onnx")), "--in-process")
    assert status == 0, err
    for v in results["variants"]:
        assert v["status"] == "ok" and v["agreement"] == 1.0, v["error"]
        assert [(row["batch_size"], row["seq_len"]) for row in v["latency"]] == [(1, 8), (1, 32)]
    # A file that fixes 32 tokens: other lengths are refused when the scenario is read (OpenVINO
    # would have reshaped it to 8 without a word; ONNX Runtime failed on the call).
    token_graph(tmp_path / "fixed.onnx", 32)
    with pytest.raises(ScenarioError, match=r"measure\.seq_lens: 8: model 'onnx_file' takes sequences of 32 tokens "
                                            r"only \(its file fixes that axis\): use 32$"):
        load(write_scenario(text.replace("FILE", "fixed.onnx")))


class LabelAndScores(torch.nn.Module):
    """A classifier as scikit-learn's ONNX converters give one: the label first, then the probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        scores = self.model(x).softmax(-1)
        return scores.argmax(-1), scores


def export_label_and_scores(path) -> None:
    with torch.no_grad():
        torch.onnx.export(LabelAndScores(mlp()).eval(), (torch.zeros(2, 1, 8, 8),), str(path), dynamo=False,
                          opset_version=17, input_names=["pixels"], output_names=["label", "probabilities"],
                          dynamic_axes={"pixels": {0: "n"}, "label": {0: "n"}, "probabilities": {0: "n"}})


def test_a_file_with_several_outputs_is_read_at_the_output_it_names(write_scenario, tmp_path, run_quick):
    pytest.importorskip("openvino")
    export_label_and_scores(tmp_path / "two.onnx")
    variants = "  - {name: ort, backend: onnxruntime}\n  - {name: openvino, backend: openvino}\n"
    # The first output, the labels, is refused in one line that says how to choose another.
    status, out, err, results = run_quick(write_scenario(scenario("two.onnx", variants)))
    assert status == 2, out + err
    assert all("two.onnx: output 'label' (the first of 2) has shape (?); suite reads it as (batch, classes) scores: "
               "name another with the model's `output`" in v["error"] for v in results["variants"])
    # Named, the probabilities run on both backends with the torch model's accuracy.
    status, _, err, results = run_quick(write_scenario(scenario("two.onnx, output: probabilities", variants)),
                                        "--in-process")
    assert status == 0, err
    for v in results["variants"]:
        assert v["status"] == "ok", v["error"]
        assert v["accuracy"] == pytest.approx(accuracy_of(mlp()), abs=1e-6) and v["agreement"] == 1.0
        assert "output 'probabilities' taken of 2 (label, probabilities)" in v["backend_info"]["onnx_notes"]
    # A name the file does not have is refused when the scenario is read, naming the field.
    with pytest.raises(ScenarioError, match=r"model\.output: .*two\.onnx has no output 'logits' \(its outputs: "
                                            r"'label', 'probabilities'\)$"):
        load(write_scenario(scenario("two.onnx, output: logits", variants)))


def test_nodes_without_names_are_named_so_that_keep_float_and_search_can_name_them(write_scenario, tmp_path,
                                                                                    run_quick):
    tiny_graph(tmp_path / "m.onnx")  # its nodes have no names (ONNX allows that)
    status, _, err, results = run_quick(write_scenario(scenario("m.onnx", (
        "  - {name: int8, backend: onnxruntime, compress: [ort_int8_static]}\n"
        "  - {name: kept, backend: onnxruntime, compress: [{method: ort_int8_static, keep_float: [MatMul_2]}]}\n"))),
        "--in-process")
    assert status == 0, err
    int8, kept = results["variants"]
    assert int8["compress_records"][0]["quantized_layers"] == ["MatMul_2"]  # named by type and position
    assert kept["status"] == "ok" and kept["compress_records"][0]["quantized_layers"] == []
    assert "external data inlined, unnamed nodes named" in kept["backend_info"]["onnx_notes"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".onnx") == ["m.onnx"]  # the user's file untouched


@pytest.mark.parametrize(("variant", "message"), [
    ("{name: a}", r"variants\[0\]\.backend: backend 'eager' cannot run an ONNX model, and model 'onnx_file' is one "
                  r"\(backends that run it: onnxruntime, openvino, tensorrt\)$"),
    ("{name: a, backend: compile}", r"backend 'compile' cannot run an ONNX model"),
    ("{name: a, backend: onnxruntime, compress: [int8_dynamic]}",
     r"variants\[0\]\.compress\[0\]\.method: 'int8_dynamic' cannot start from an ONNX model, model 'onnx_file' is one$"),
    ("{name: a, backend: onnxruntime, compress: [ort_int8_dynamic, ort_int8_static]}",
     r"'ort_int8_static' cannot start from an int8 ONNX model, which 'ort_int8_dynamic' makes$"),
])
def test_torch_backends_and_steps_refuse_an_onnx_file_when_the_scenario_is_read(write_scenario, tmp_path,
                                                                                 variant, message):
    export(mlp(), tmp_path / "mlp.onnx", batch=None)
    with pytest.raises(ScenarioError, match=message):
        load(write_scenario(f"model: {{name: onnx_file, path: mlp.onnx}}\ndataset: digits\nvariants: [{variant}]\n"))


def tiny_graph(path, inputs=(("x", "FLOAT", ["n", 1, 8, 8]),), output=("n", 10)) -> None:
    """A graph of a few bytes: its first input flattened and cast to float, a product with a stored weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((int(np.prod(inputs[0][2][1:])), 10), np.float32), "w")
    flat = [helper.make_node("Flatten", [inputs[0][0]], ["f"]), helper.make_node("Cast", ["f"], ["c"], to=TensorProto.FLOAT)]
    product = [helper.make_node("MatMul", ["c", "w"], ["y" if len(output) == 2 else "m"])]
    if len(output) == 3:  # scores of another rank: one more axis
        product.append(helper.make_node("Unsqueeze", ["m", "axes"], ["y"]))
        weight = [weight, numpy_helper.from_array(np.array([2], np.int64), "axes")]
    graph = helper.make_graph(flat + product, "tiny",
                              [helper.make_tensor_value_info(n, getattr(TensorProto, t), s) for n, t, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output))],
                              weight if isinstance(weight, list) else [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def external_with(path, location: str, cut: int = 0) -> None:
    """A tiny graph whose weight lives in external data at `location` (cut short by `cut` bytes)."""
    import onnx

    tiny_graph(path)
    proto = onnx.load(str(path))
    onnx.save(proto, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    data = (path.parent / "w.bin").read_bytes()
    (path.parent / "w.bin").write_bytes(data[:len(data) - cut])
    if location != "w.bin":
        proto = onnx.load(str(path), load_external_data=False)
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(proto, str(path))


def make_broken(kind: str, path) -> None:
    if kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        export(mlp(), path, batch=None)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "two inputs":
        tiny_graph(path, (("x", "FLOAT", ["n", 1, 8, 8]), ("mask", "FLOAT", ["n", 8])))
    elif kind == "int input":
        tiny_graph(path, (("x", "INT64", ["n", 1, 8, 8]),))
    elif kind == "wrong shape":
        tiny_graph(path, (("x", "FLOAT", ["n", 1, 16, 16]),))
    elif kind == "wrong rank":
        tiny_graph(path, (("x", "FLOAT", ["n", 64]),))
    elif kind == "scores of rank 3":
        tiny_graph(path, output=("n", 10, 1))
    elif kind == "sequence of scores":  # what scikit-learn's ZipMap makes of probabilities, roughly
        import onnx
        from onnx import TensorProto, helper

        tiny_graph(path)
        proto = onnx.load(str(path))
        proto.graph.node.append(helper.make_node("SequenceConstruct", ["y"], ["s"]))
        del proto.graph.output[:]
        proto.graph.output.append(helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, ["n", 10]))
        onnx.save(proto, str(path))
    elif kind == "one row per batch":  # scores averaged over the batch: a shape the declared output hides
        import onnx
        from onnx import helper

        tiny_graph(path, output=(1, 10))
        proto = onnx.load(str(path))
        proto.graph.node[-1].output[0] = "m"
        proto.graph.node.append(helper.make_node("ReduceMean", ["m"], ["y"], axes=[0], keepdims=1))
        onnx.save(proto, str(path))
    elif kind == "sparse 3 GiB":  # a few bytes on disk; reading it first would take 3 GiB of memory
        with open(path, "wb") as handle:
            handle.truncate(3 * 2**30)
    elif kind == "external missing":
        external_with(path, "w.bin")
        (path.parent / "w.bin").unlink()
    elif kind == "external outside":
        external_with(path, "../../etc/passwd")
    elif kind == "external truncated":
        external_with(path, "w.bin", cut=8)


@pytest.mark.parametrize(("kind", "message"), [
    ("text", "m.onnx: not an ONNX model"),
    ("empty", "m.onnx: not an ONNX model (no graph or no opset in it)"),
    ("truncated", "m.onnx: not an ONNX model"),
    ("two inputs", "m.onnx: the model takes 2 inputs ('x', 'mask'); suite feeds it one, the dataset's samples"),
    ("int input", "m.onnx: input 'x' takes int64, but dataset 'digits' gives float32"),
    ("wrong shape", "m.onnx: input 'x' has shape (?, 1, 16, 16), but dataset 'digits' gives samples of shape "
                    "(1, 8, 8) (axis 2: 8, not 16)"),
    ("wrong rank", "m.onnx: input 'x' has 2 axes (?, 64), but dataset 'digits' gives 4: (batch, 1, 8, 8)"),
    ("scores of rank 3", "m.onnx: output 'y' has shape (?, 10, 1); suite reads it as (batch, classes) scores"),
    ("sequence of scores", "m.onnx: output 's' is a sequence, not a tensor; suite reads (batch, classes) scores"),
    ("one row per batch", "the model gave outputs of shape (1, 10) for a batch of 4 inputs; suite reads (batch, "
                          "classes) scores"),
    ("sparse 3 GiB", "m.onnx: 3.0 GiB, past protobuf's 2 GiB limit on one ONNX file"),
    ("external missing", "m.onnx: tensor 'w' needs external data file 'w.bin' next to it, which is missing"),
    ("external outside", "m.onnx: tensor 'w' names external data '../../etc/passwd' outside the model's folder: refused"),
    ("external truncated", "m.onnx: tensor 'w' reads bytes up to 2560 of 'w.bin', which holds 2552: the file is truncated"),
])
def test_a_broken_onnx_file_fails_in_one_line_with_exit_2(write_scenario, tmp_path, run_quick, kind, message):
    make_broken(kind, tmp_path / "m.onnx")
    status, out, err, results = run_quick(write_scenario(scenario("m.onnx", "  - {name: a, backend: onnxruntime}\n")))
    assert status == 2, out + err
    [v] = results["variants"]
    assert v["status"] == "failed" and v["error_type"] == "SuiteError" and message in v["error"], v["error"]
    assert "\n" not in v["error"] and "Traceback" not in out + err
