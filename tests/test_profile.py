"""Where the time goes (measure.profile, issue 18): FLOPs against hand counts, the roofline
verdicts, the operator tables of every installed backend on a small model, `suite explain`, and
that profiling leaves the timed figures alone."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest
import torch
from torch import nn

from suite.__main__ import main
from suite.measure import ops, work

SCENARIO = """
model: {name: mlp, hidden: [32]}
measure: {batch_sizes: [1, 32], profile: true}
variants:
  - name: fp32
  - name: int8-dynamic
    compress: [int8_dynamic]
  - name: ort
    backend: onnxruntime
  - name: ort-int8
    backend: onnxruntime
    compress: [ort_int8_dynamic]
  - name: openvino
    backend: {name: openvino, precision: f32}
  - name: compiled
    backend: compile
"""


def test_flops_match_hand_counts_for_an_mlp_and_a_cnn():
    from models.nets.cnn import SmallCNN

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    total, top = work.count_flops(mlp, torch.zeros(1, 1, 8, 8))
    assert total == 2 * 64 * 32 + 2 * 32 * 10  # a multiply-add counts 2; bias adds are not counted
    cnn = SmallCNN(1, (8, 8), 10, channels=(4, 8), hidden=16)
    total, top = work.count_flops(cnn, torch.zeros(1, 1, 8, 8))
    conv1 = 2 * (4 * 8 * 8) * (1 * 3 * 3)  # outputs x (inputs x kernel) per output
    conv2 = 2 * (8 * 8 * 8) * (4 * 3 * 3)
    assert total == conv1 + conv2 + 2 * (8 * 4 * 4) * 16 + 2 * 16 * 10
    assert top["SmallCNN.features.2"] == conv2 and max(top, key=top.get) == "SmallCNN.features.2"
    assert work.count_flops("not a module", None) is None
    from suite.measure.profiling import flops_model

    pruned = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))  # as channel pruning leaves it
    assert flops_model(pruned, mlp, 1) == (pruned, "the model as the backend gets it")
    dynamic = torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8)
    assert flops_model(dynamic, mlp, 1)[0] is mlp  # the counter cannot see quantized::linear_dynamic
    graph = torch.fx.symbolic_trace(cnn)
    assert flops_model(graph, cnn, 1)[0] is graph and work.count_flops(graph, torch.zeros(1, 1, 8, 8))[0] == total
    assert work.weight_bytes(nn.Linear(64, 32)) == (64 * 32 + 32) * 4


def test_the_roofline_verdicts():
    limits = {"matmul_gflops": 100.0, "read_bandwidth_gbps": 10.0}
    assert work.roof(80e6, 1e3, 1.0, limits)["bound"] == "compute"  # 80 GFLOP/s of 100
    assert work.roof(1e3, 8e6, 1.0, limits)["bound"] == "memory"  # 8 GB/s of 10
    assert work.roof(1e6, 1e3, 1.0, limits)["bound"] == "overhead"  # 1 % and 0.01 %
    mixed = work.roof(30e6, 1e3, 1.0, limits)
    assert mixed["bound"] == "mixed" and mixed["compute_share"] == pytest.approx(0.3)
    assert work.roof(None, None, 1.0, limits)["bound"] is None


def test_an_operator_table_keeps_the_top_and_adds_up():
    found = [ops.Op(f"op{i}", 2, 0.001 * (i + 1)) for i in range(20)] + [ops.Op("QuantizeLinear", 2, 0.05, "float")]
    table = ops.table(found, calls=2, wall_s=0.5)
    assert len(table["ops"]) == ops.TOP_OPS + 1 and table["ops"][-1]["op"] == f"other ({21 - ops.TOP_OPS} operators)"
    assert table["ops"][0]["op"] == "QuantizeLinear" and table["ops"][0]["family"] == "conversion"
    assert sum(row["share"] for row in table["ops"]) == pytest.approx(1.0)
    assert table["ops_ms"] == pytest.approx((sum(0.001 * (i + 1) for i in range(20)) + 0.05) / 2 * 1e3)
    assert table["outside_share"] == pytest.approx(1 - table["ops_ms"] / 250)  # of the wall time: 0.5 s / 2 calls
    assert ops.table(found, 2, 0.5, timed_ms=1000.0)["outside_share"] == pytest.approx(1 - table["ops_ms"] / 1000)
    assert ops.table(found, 2, 0.5, timed_ms=100.0)["outside_share"] == 0.0  # the profiler lengthened the operators
    assert {ops.family(n) for n in ("aten::addmm", "MatMulInteger", "FullyConnected", "DynamicQuantizeMatMul",
                                    "quantized::linear_dynamic")} == {"matrix product"}
    assert {ops.family(n) for n in ("QLinearConv", "aten::mkldnn_convolution", "brgconv")} == {"convolution"}
    assert (ops.family("QLinearAdd"), ops.family("QGemm"), ops.family("QLinearMatMul")) == (
        "other", "matrix product", "matrix product")
    assert {ops.family(n) for n in ("DynamicQuantizeLinear", "Reorder", "aten::dequantize", "FakeQuantize",
                                    "aten::quantize_per_tensor")} == {"conversion"}
    mine = ops.table([ops.Op("Conv", 1, 0.002), ops.Op("Reorder", 1, 0.002)], 1, 0.005)
    theirs = ops.table([ops.Op("Conv", 1, 0.004)], 1, 0.005)
    found = ops.diff(mine, theirs)
    assert found["families"]["convolution"]["speedup"] == pytest.approx(2.0)
    assert [row["op"] for row in found["added"]] == ["Reorder"] and found["added_share"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    """One run of SCENARIO in this process, profile on, --quick timing."""
    folder = tmp_path_factory.mktemp("profiled")
    (folder / "s.yaml").write_text(SCENARIO)
    assert main(["run", str(folder / "s.yaml"), "--quick", "--in-process", "--out", str(folder / "out"),
                 "--cache-dir", str(folder / "cache")]) == 0
    [results] = list((folder / "out").glob("*/*/results.json"))
    return results.parent


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("variant, profiler, wanted", [
    ("fp32", "eager", "aten::addmm"),
    ("int8-dynamic", "eager", "quantized::linear_dynamic"),
    pytest.param("ort", "onnxruntime", "Gemm", marks=pytest.mark.skipif(not installed("onnxruntime"),
                                                                        reason="onnxruntime is not installed")),
    pytest.param("ort-int8", "onnxruntime", "MatMul", marks=pytest.mark.skipif(
        not installed("onnxruntime"), reason="onnxruntime is not installed")),
    pytest.param("openvino", "openvino", "FullyConnected", marks=pytest.mark.skipif(
        not installed("openvino"), reason="openvino is not installed")),
    ("compiled", "compile", "Torch-Compiled Region"),  # inductor's kernels: mkl or oneDNN linear, by CPU
])
def test_each_backend_gives_an_operator_table(profiled_run, variant, profiler, wanted):
    results = json.loads((profiled_run / "results.json").read_text())
    v = next(v for v in results["variants"] if v["name"] == variant)
    assert v["status"] == "ok", v["error"]
    profile = v["profile"]
    assert [s["shape"] for s in profile["shapes"]] == ["b=1", "b=32"]
    assert profile["shapes"][1]["flops"] == 32 * profile["shapes"][0]["flops"] == 32 * 2 * (64 * 32 + 32 * 10)
    for shape in profile["shapes"]:
        table = shape["ops"]
        assert table["profiler"] == profiler and table["calls"] >= 1 and table["ops_ms"] > 0
        assert any(wanted in row["op"] for row in table["ops"]), [row["op"] for row in table["ops"]]
        assert any(row["family"] == "matrix product" for row in table["ops"]), [row["op"] for row in table["ops"]]
        assert sum(row["share"] for row in table["ops"]) == pytest.approx(1.0)
        assert shape["compute_share"] > 0 and shape["bound"] in ("compute", "memory", "overhead", "mixed")
    if variant == "openvino":
        assert {row["precision"] for row in profile["shapes"][0]["ops"]["ops"]} & {"FP32", "f32"}
    phases = list(v["phases"])
    assert phases.index("profile") > phases.index("sampling")  # taken after the timed samples


def test_explain_prints_the_work_the_operators_and_the_reasons(profiled_run, capsys):
    assert main(["explain", str(profiled_run), "int8-dynamic"]) == 0
    out = capsys.readouterr().out
    assert "int8-dynamic (eager, int8_dynamic)" in out and "FLOPs counted on the float model before compression" in out
    assert "b=1: p50" in out and "against its reference fp32:" in out and "matrix products:" in out
    assert main(["explain", str(profiled_run), "ort-int8", "--against", "ort"]) == 0
    out = capsys.readouterr().out
    assert "against its reference ort:" in out and "onnxruntime profiler" in out
    assert main(["explain", str(profiled_run), "ort-int8"]) == 0  # by default: uncompressed, same backend
    assert "against its reference ort:" in capsys.readouterr().out
    assert main(["explain", str(profiled_run), "ort-int8", "--against", "fp32"]) == 0
    assert "operators not set side by side: onnxruntime's profiler against eager's" in capsys.readouterr().out
    assert main(["explain", str(profiled_run), "nope"]) == 2
    assert "variant 'nope' is not in the run" in capsys.readouterr().err
    assert main(["explain", str(profiled_run), "fp32", "--against", "ghost"]) == 2
    page = (profiled_run / "index.html").read_text()
    assert "Where the time goes, operator by operator" in page and 'id="operator-families"' in page
    assert 'id="roofline"' in page
    assert page.count("<details><summary>") >= 5


def test_the_comparison_page_sets_operator_families_side_by_side(profiled_run, tmp_path):
    from suite.report.comparison import load_runs, render_comparison

    page = render_comparison(load_runs([profiled_run, profiled_run]), 0)
    assert "<h2>Operators by family</h2>" in page and "matrix product" in page
    assert page.count(">1.00<") >= 5  # a run against itself: every family's speed-up is 1
    results = json.loads((profiled_run / "results.json").read_text())
    for v in results["variants"]:
        v["profile"] = None
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert "Operators by family" not in render_comparison(load_runs([profiled_run, tmp_path]), 0)


def test_reasons_come_from_the_figures():
    from suite.analysis.explain import reasons
    from suite.records import OpRow, OpTable, ShapeProfile
    from tests.report_runs import variant

    def shape(ms, rows, outside, bound="overhead", batch=1):
        table = OpTable("eager", 10, ms, ms * (1 - outside), outside, ops.by_family(rows),
                        tuple(OpRow(**row) for row in rows))
        return ShapeProfile(f"b={batch}", batch, ms, flops=1000, compute_share=0.01, bandwidth_share=0.02,
                            bound=bound, ops=table)

    conv = {"op": "Conv", "family": "convolution", "per_call": 1, "ms": 0.5, "share": 0.5, "precision": "float"}
    quant = {"op": "QuantizeLinear", "family": "conversion", "per_call": 1, "ms": 0.5, "share": 0.5}
    mine = shape(2.0, [conv, quant], 0.5)
    theirs = shape(2.0, [{**conv, "ms": 1.0, "share": 1.0}], 0.5)
    quantized = variant("int8", 2.0, 0.9, 10, compress=({"method": "int8_static"},))
    found = reasons(quantized, variant("fp32", 2.0, 0.9, 10), mine, theirs)
    text = "; ".join(found)
    assert "bound by overhead" in text and "50% of its time is outside operators" in text
    assert "50% of its operator time is in conversions (QuantizeLinear)" in text
    assert "50% of its operator time is convolutions and matrix products still in float" in text
    plain = shape(2.0, [{**conv, "precision": None}], 0.0, bound="compute")
    assert reasons(quantized, variant("fp32", 2.0, 0.9, 10), plain, plain) == []


def test_profiling_leaves_the_timed_figures_alone():
    """Timed, profiled, timed again, in alternating rounds in one process: the paired comparison
    the gate uses finds no slowdown after the profiler has run (it leaves no hooks behind)."""
    from suite.measure.significance import compare_paired

    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    inputs = torch.randn(8, 64)

    def block(n: int = 30) -> list[float]:
        samples = []
        with torch.inference_mode():
            for _ in range(n):
                start = time.perf_counter()
                model(inputs)
                samples.append(time.perf_counter() - start)
        return samples

    before, after = [], []
    block()
    for _ in range(9):
        before.append(block())
        with torch.inference_mode():
            ops.torch_ops(lambda: model(inputs), ops.TORCH_MOST_CALLS)
        after.append(block())
    comparison = compare_paired(before, after)
    assert comparison.verdict() != "slower" or comparison.ratio < 1.10, comparison
    assert np.isfinite(comparison.ratio)


DECODER = """
model: {name: gpt2, layers: 1, hidden: 32, heads: 2, context: 128, vocab: 400}
dataset: pydoc
measure: {batch_sizes: [1, 2], profile: true, generate: {prompt_lens: [8]}}
variants:
  - name: fp32
  - name: int8-dynamic
    compress: [int8_dynamic]
"""


def test_a_decoder_is_profiled_per_token(tmp_path, capsys):
    """The prefill and a decode step each get their work, roofline and operators; explain reads them."""
    (tmp_path / "s.yaml").write_text(DECODER)
    assert main(["run", str(tmp_path / "s.yaml"), "--quick", "--in-process", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    [results] = list((tmp_path / "out").glob("*/*/results.json"))
    variants = {v["name"]: v for v in json.loads(results.read_text())["variants"]}
    # Hand count: one block (ln_1 64, c_attn 32x96+96, c_proj 32x32+32, ln_2 64, c_fc 32x128+128,
    # c_proj 128x32+32) and ln_f 64 = 12,768 weights outside the (tied) embedding tables, 2 FLOPs each per token.
    per_token = 2 * 12_768
    for name, wanted in (("fp32", "aten::addmm"), ("int8-dynamic", "quantized::linear_dynamic")):
        v = variants[name]
        assert v["status"] == "ok", v["error"]
        shapes = {s["shape"]: s for s in v["profile"]["shapes"]}
        assert set(shapes) == {"ttft b=1 p=8", "tpot b=1 p=8", "ttft b=2 p=8", "tpot b=2 p=8"}
        for batch in (1, 2):
            prefill, step = shapes[f"ttft b={batch} p=8"], shapes[f"tpot b={batch} p=8"]
            assert (prefill["metric"], step["metric"]) == ("ttft", "tpot")
            assert step["flops"] == batch * per_token and prefill["flops"] == 8 * batch * per_token
            # --quick: 4 new tokens, so 3 decode steps, the first of them not profiled
            assert prefill["ops"]["calls"] == 3 and step["ops"]["calls"] == 2
            for shape in (prefill, step):
                ops_seen = [row["op"] for row in shape["ops"]["ops"]]
                assert any(wanted in op for op in ops_seen), ops_seen
                assert shape["ops"]["by_family"].get("matrix product", 0) > 0
                assert shape["bound"] in ("compute", "memory", "overhead", "mixed")
        phases = list(v["phases"])
        assert phases.index("profile") > phases.index("sampling")
    assert main(["explain", str(results.parent), "int8-dynamic"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs counted on 2 per weight outside the embedding tables" in out
    assert "tpot b=1 p=8: p50" in out and "eager profiler, 2 calls" in out and "against its reference fp32:" in out
    assert "matrix products:" in out


def test_a_decoder_without_a_profiler_says_so():
    from suite.lm import DecoderContract
    from suite.measure.profiling import profile_decoder
    from suite.results import LatencyResult

    row = LatencyResult(batch_size=1, seq_len=4, metric="tpot", samples_ms=(2.0,), n=1, p50_ms=2.0, p90_ms=2.0,
                        p95_ms=2.0, p99_ms=2.0, mean_ms=2.0, std_ms=0.0, cv=0.0, ci95_p50_ms=(2.0, 2.0),
                        robust_cv=0.0, outliers=0)
    profile = profile_decoder(DecoderContract(), None, "llamacpp", None, 8, (row,), 4_000_000, 1_000_000,
                              {"matmul_gflops": 100.0, "read_bandwidth_gbps": 10.0})
    [shape] = profile.shapes
    assert shape.ops is None and "backend llamacpp has no per-operator profiler" in profile.ops_reason
    assert shape.flops == 2_000_000 and shape.achieved_gbps == pytest.approx(2.0)  # 4 MB in 2 ms
    assert shape.bandwidth_share == pytest.approx(0.2) and shape.bound == "mixed"
