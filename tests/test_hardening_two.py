"""Hardening, round two (issue 30): files a backend refuses, non-finite outputs, texts longer than
a decoder's context, Ray addresses that do not answer, damaged caches and saved search trials, a
full disk, large or special results files, unbounded waits. Each test makes its own bad input and
checks the exit status, the one line and that no traceback came out; each runs within a time-out."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from suite.__main__ import main
from tests.conftest import ROOT
from tests.test_hardening import one_error_line

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra")


def error_line(capsys, code: int, expected: str) -> str:
    """The one `error:` line a run printed last (its progress lines above it), exit status 2."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in err, err
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and expected in errors[0], err
    return errors[0]


def failed_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": failed: " in line and not line.startswith("[")]


# --- 1. a user's ONNX file the backend refuses to load or run ------------------------------------

def refused_file(kind: str, path: Path) -> None:
    """A file ONNX's checker passes and a backend refuses, each in its own way."""
    import onnx
    from onnx import helper, numpy_helper

    from tests.test_onnx_file import tiny_graph

    tiny_graph(path)
    proto = onnx.load(str(path))
    nodes, weights = proto.graph.node, proto.graph.initializer
    if kind == "opset newer than ONNX Runtime's":
        proto.opset_import[0].version = 30
    elif kind == "operator of an unknown domain":
        nodes.insert(2, helper.make_node("Foo", ["c"], ["c2"], domain="my.custom"))
        nodes[3].input[0] = "c2"
        proto.opset_import.append(helper.make_opsetid("my.custom", 1))
    elif kind == "Expand to an impossible shape":
        weights.append(numpy_helper.from_array(np.array([10**6, 10**6, 10], np.int64), "big"))
        nodes[-1].output[0] = "m"
        nodes.extend([helper.make_node("Expand", ["m", "big"], ["e"]),
                      helper.make_node("ReduceMean", ["e"], ["y"], axes=[0], keepdims=0)])
    elif kind == "Reshape that contradicts the input":
        weights.append(numpy_helper.from_array(np.array([3, 64], np.int64), "shape"))
        nodes.insert(0, helper.make_node("Reshape", ["x", "shape"], ["xr"]))
        nodes[1].input[0] = "xr"
    elif kind == "Gather past the end":
        weights.append(numpy_helper.from_array(np.array([50], np.int64), "at"))
        nodes[-1].output[0] = "m"
        nodes.extend([helper.make_node("Gather", ["m", "at"], ["g"], axis=1),
                      helper.make_node("Expand", ["g", "ten"], ["y"])])
        weights.append(numpy_helper.from_array(np.array([1, 10], np.int64), "ten"))
    onnx.save(proto, str(path))


@needs_onnx
@pytest.mark.parametrize(("kind", "refusals"), [
    ("opset newer than ONNX Runtime's", {"ort": "ONNX Runtime could not load it: ONNX Runtime only *guarantees*"}),
    ("operator of an unknown domain", {"ort": "ONNX Runtime could not load it: Fatal error: my.custom:Foo(-1) is not "
                                              "a registered function/op",
                                       "ov": "OpenVINO could not compile it for shape (1, 1, 8, 8): FrontEnd API failed"}),
    ("Expand to an impossible shape", {"ort": "ONNX Runtime could not run it on a batch of 4: Non-zero status code "
                                              "returned while running Expand node"}),
    ("Reshape that contradicts the input", {"ort": "could not run it on a batch of 4: Non-zero status code returned "
                                                   "while running Reshape node",
                                            "ov": "OpenVINO could not compile it for shape (1, 1, 8, 8): While "
                                                  "validating node 'opset1::Reshape"}),
    ("Gather past the end", {"ort": "ONNX Runtime could not run it on a batch of 4:"}),
])
def test_a_file_the_backend_refuses_is_one_line_and_the_run_goes_on(tmp_path, write_scenario, run_quick, kind,
                                                                    refusals):
    refused_file(kind, tmp_path / "m.onnx")
    variants = "  - {name: ort, backend: onnxruntime}\n" + ("  - {name: ov, backend: openvino}\n" if HAS_OPENVINO else "")
    started = time.monotonic()
    status, out, err, results = run_quick(write_scenario(
        f"model: {{name: onnx_file, path: m.onnx}}\ndataset: digits\nmeasure: {{batch_sizes: [1, 4]}}\nvariants:\n{variants}"))
    assert time.monotonic() - started < 120
    assert status == 2 and "Traceback" not in out + err, out + err
    for v in results["variants"]:  # each variant ran: one failing does not stop the other
        if v["name"] not in refusals:
            assert v["status"] in ("ok", "failed"), v
            continue
        message = refusals[v["name"]]
        assert v["status"] == "failed" and v["error_type"] == "SuiteError", v
        assert v["error"].startswith(f"{tmp_path / 'm.onnx'}: ") and message in v["error"], v["error"]
        assert "onnxruntime_src" not in v["error"] and "src/inference" not in v["error"] and len(v["error"]) < 700
        assert len([line for line in failed_lines(err) if line.startswith(f"{v['name']}: failed: ")]) == 1, err
        [log] = tmp_path.glob(f"reports/*/*/logs/{v['name']}-*.log")
        assert "what was said in full" in log.read_text()  # the backend's whole message is kept


def test_backend_messages_lose_source_locations_and_signatures():
    from suite.errors import backend_message

    ort = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /x/m.onnx failed:/onnxruntime_src/onnxruntime/core/"
           "graph/model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const std::"
           "unordered_map<std::string, int>&, bool) Opset 30 is under development.")
    assert backend_message(ort) == "Opset 30 is under development."
    ov = ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at src/frontends/x.cpp:151:\n"
          "FrontEnd API failed with OpConversionFailure:\n-- No conversion rule found for operations: my.Foo\n")
    expected = "FrontEnd API failed with OpConversionFailure: -- No conversion rule found for operations: my.Foo"
    assert backend_message(ov) == expected
    assert backend_message("x" * 5000, 300).endswith("…") and len(backend_message("x" * 5000, 300)) == 300
    assert backend_message("") == "" and "\n" not in backend_message("a\nb\n\nc")


# --- 2 and 9. outputs that hold NaN or infinity --------------------------------------------------

def non_finite_file(path: Path, value: float) -> None:
    import onnx
    from onnx import numpy_helper

    from tests.test_onnx_file import tiny_graph

    tiny_graph(path)
    proto = onnx.load(str(path))
    weight = numpy_helper.to_array(proto.graph.initializer[0]).copy()
    weight[:] = value
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "w"))
    onnx.save(proto, str(path))


NON_FINITE = "the model gave non-finite outputs (NaN or infinity) for 360 of 360 inputs"


@needs_onnx
@pytest.mark.parametrize(("value", "variant", "message"), [
    (float("nan"), "{name: ort, backend: onnxruntime}", NON_FINITE),
    (float("inf"), "{name: ort, backend: onnxruntime}", NON_FINITE),
    (float("nan"), "{name: static, backend: onnxruntime, compress: [ort_int8_static]}",
     "ort_int8_static: calibration saw non-finite outputs (NaN or infinity) in"),
    (float("inf"), "{name: static, backend: onnxruntime, compress: [{method: ort_int8_static, per_channel: false}]}",
     "ort_int8_static: calibration saw non-finite outputs"),
    (float("-inf"), "{name: ov, backend: openvino}", NON_FINITE),
])
def test_non_finite_outputs_fail_the_variant_in_one_line(tmp_path, write_scenario, run_quick, value, variant, message):
    if "openvino" in variant and not HAS_OPENVINO:
        pytest.skip("needs the openvino extra")
    non_finite_file(tmp_path / "m.onnx", value)
    status, out, err, results = run_quick(write_scenario(
        f"model: {{name: onnx_file, path: m.onnx}}\ndataset: digits\nvariants: [{variant}]\n"))
    [v] = results["variants"]
    assert status == 2 and v["status"] == "failed" and message in v["error"], v["error"]
    assert "Traceback" not in out + err and len(failed_lines(err)) == 1, err


def test_a_torch_model_with_nan_weights_fails_rather_than_score_chance(tmp_path, write_scenario, run_quick):
    import torch

    from models.mlp import SPEC

    model = SPEC.build(SPEC.Params(hidden=(8,)), type("Shape", (), {"input_shape": (1, 8, 8), "num_classes": 10}))
    torch.save({k: torch.full_like(t, float("nan")) for k, t in model.state_dict().items()}, tmp_path / "nan.pt")
    status, out, err, results = run_quick(write_scenario(
        "model: {name: mlp, hidden: [8], checkpoint: nan.pt}\nvariants: [{name: a}, {name: b, compress: [int8_dynamic]}]\n"))
    assert status == 2 and "Traceback" not in out + err, out + err
    message = "nan.pt: tensor '1.weight' holds NaN (training that diverged, or a damaged file)"
    assert all(v["status"] == "failed" and message in v["error"] for v in results["variants"])  # never accuracy 0.1


def test_finite_scores_pass_and_rows_with_none_fail():
    from suite.errors import SuiteError
    from suite.measure.quality import finite

    masked = np.array([[1.0, -np.inf], [0.5, 2.0]], np.float32)  # -inf for a class that cannot be: a fine score
    assert finite(masked) is masked
    for bad in (np.array([[np.nan, 1.0]]), np.array([[-np.inf, -np.inf]]), np.array([[np.inf, 1.0], [1, 2]]) * np.nan,
                np.full((3, 4), np.nan), np.array([[1.0, 2.0], [np.nan, np.nan]])):
        with pytest.raises(SuiteError, match="non-finite outputs"):
            finite(bad.astype(np.float32))


# --- 3. texts and requests longer than a decoder's context ---------------------------------------

def causal_folder(tmp_path: Path, positions: int) -> Path:
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": positions}))
    return folder


@pytest.mark.parametrize(("model", "generate", "message"), [
    ("{name: gpt2, context: 64}", "{}", ("a prompt of 128 tokens and 32 new ones (prompt_lens, new_tokens) need 160 "
                                         "positions, but model 'gpt2' has 64")),
    ("{name: gpt2, context: 64}", "{prompt_lens: [8], new_tokens: 4, fidelity_prompt_len: 60}",
     "fidelity prompts of 60 tokens and 32 new ones (fidelity_prompt_len, fidelity_tokens) need 92 positions"),
    ("{name: gpt2, context: 32}", "{prompt_lens: [8], new_tokens: 4, fidelity_tokens: 8}",
     "40 new tokens after a text prompt (text_tokens) need 41 positions, but model 'gpt2' has 32"),
    ("{name: gpt2_random, context: 16, layers: 1, hidden: 32, heads: 2, vocab: 300}", "{prompt_lens: [8, 16]}",
     "need 64 positions, but model 'gpt2_random' has 16"),
    ("{name: hf_causal, path: lm}", "{prompt_lens: [30], fidelity_tokens: 8}",
     "a prompt of 30 tokens and 32 new ones (prompt_lens, new_tokens) need 62 positions, but model 'hf_causal' has 48"),
])
def test_requests_longer_than_the_context_are_refused_once_at_validate(tmp_path, write_scenario, capsys, model,
                                                                       generate, message):
    causal_folder(tmp_path, 48)
    path = write_scenario(f"model: {model}\nmeasure: {{generate: {generate}}}\nvariants: [{{name: a}}, {{name: b}}]\n")
    for command in (["validate", str(path)], ["run", str(path), "--quick", "--out", str(tmp_path / "out")]):
        line = one_error_line(capsys, main(command), message)
        assert line.startswith(f"error: {path}: measure.generate: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unreadable_config_leaves_the_check_to_the_variant(tmp_path):
    from models.causal_lm import CausalFolderParams, folder_positions

    folder = causal_folder(tmp_path, 48)
    assert folder_positions(CausalFolderParams(path=folder)) == 48
    for text in ("[1]", "{", '{"n_positions": true}', '{"max_position_embeddings": -3}', '{"n_positions": "64"}'):
        (folder / "config.json").write_text(text)
        assert folder_positions(CausalFolderParams(path=folder)) is None


def test_long_text_prompts_are_cut_to_fit_and_one_long_text_is_cut_into_passages(tmp_path, write_scenario, run_quick):
    from suite.datasets.text import passages

    words = " ".join(f"word{i % 50}" for i in range(6000))  # one paragraph, no blank line
    cut = passages(words, 300)
    assert len(cut) > 50 and max(map(len, cut)) <= 600 and " ".join(cut) == words
    assert passages("x" * 1000, 100) == ["x" * 200] * 5  # no space to cut at: cut at the limit
    (tmp_path / "long.txt").write_text(words)
    long_prompt = " ".join(["word7"] * 300)  # 1,800 characters: texts take 2,000 at most
    written = []
    for texts in ([long_prompt, "word1 word2"], ["word1 word2", long_prompt]):  # --quick writes the first only
        status, out, err, results = run_quick(write_scenario(f"""
            model: {{name: gpt2, layers: 1, hidden: 32, heads: 2, context: 32, vocab: 300}}
            dataset: {{name: text_file, path: long.txt}}
            measure: {{generate: {{prompt_lens: [8], new_tokens: 4, fidelity_prompt_len: 8, fidelity_tokens: 8,
                                  text_tokens: 6, texts: {json.dumps(texts)}}}}}
            variants: [{{name: a}}]
            """))
        assert status == 0 and "Traceback" not in out + err, out + err
        written += results["variants"][0]["generation"]["texts"]
    long, short = written
    assert long["prompt_tokens_dropped"] > 0 and long["new_tokens"] == 6
    assert short["prompt"] == "word1 word2" and "prompt_tokens_dropped" not in short


# --- 4. Ray addresses where no cluster answers ---------------------------------------------------

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")


@pytest.fixture(scope="module")
def plain_http_server():
    """An HTTP server on loopback: it answers, but not as a Ray cluster."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> str:
    from suite.measure.endpoint import free_port

    return f"127.0.0.1:{free_port()}"  # nothing listens there


@needs_ray
@pytest.mark.parametrize(("address", "how", "expected"), [
    ("closed", "--address", "no Ray cluster answered within 10 s (Connection refused)"),
    ("http", "--address", "no Ray cluster answered within 10 s (it answered, but not as a Ray cluster: no gRPC there)"),
    ("no-such-host.invalid:6379", "--address", "no Ray cluster answered within 10 s (the name does not resolve"),
    ("not an address", "--address", "not HOST:PORT (or ray://HOST:PORT)"),
    ("127.0.0.1:70000", "--address", "not HOST:PORT"),
    ("closed", "RAY_ADDRESS", "no Ray cluster answered"),
    ("http", "--on-each-node", "no Ray cluster answered"),
    ("closed", "a stale record", "the Ray cluster last started on this machine"),
    ("http", "a stale record, --on-each-node", "start one (ray start --head), or give --address"),
    ("ray://closed", "--address", "no Ray cluster answered"),
])
def test_an_address_where_no_ray_cluster_answers_is_one_line_within_seconds(
        tmp_path, write_scenario, capsys, monkeypatch, plain_http_server, address, how, expected):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}]\n")
    address = address.replace("closed", closed_port()).replace("http", plain_http_server)
    args = ["run", str(path), "--quick", "--launcher", "ray", "--out", str(tmp_path / "out"), "--cache-dir",
            str(tmp_path / "cache")]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if how == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    elif how.startswith("a stale record"):  # what `ray start` leaves of a cluster since stopped
        monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
        (tmp_path / "ray").mkdir()
        (tmp_path / "ray" / "ray_current_cluster").write_text(address)
    else:
        args += ["--address", address]
    args += ["--on-each-node"] if how.endswith("--on-each-node") else []
    started = time.monotonic()
    line = one_error_line(capsys, main(args), expected)
    assert time.monotonic() - started < 30
    assert line.startswith({"RAY_ADDRESS": "error: RAY_ADDRESS "}.get(how, "error: --launcher ray: the Ray cluster last"
                                                                      if "stale" in how else "error: --address "))
    assert not list((tmp_path / "out").glob("*/*")), "a run folder was left behind"


# --- 5 and 9. damaged cache entries: told, rebuilt, the same figures -----------------------------

def tamper_checkpoint(cache: Path, how: str) -> None:
    import torch

    [weights] = cache.glob("checkpoints/*.pt")
    record = weights.with_suffix(".json")
    if how == "checkpoint a folder":
        weights.unlink()
        weights.mkdir()
        (weights / "x").write_text("1")
    elif how == "record of the wrong shape":
        record.write_text("[1, 2, 3]")
    elif how == "bytes flipped":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "another seed's checkpoint":
        state = torch.load(weights, weights_only=True)
        torch.save({k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}, weights)
    elif how == "record without its digest":
        record.write_text(json.dumps(json.loads(record.read_text())["training"]))
    elif how == "record of another entry":
        data = json.loads(record.read_text())
        record.write_text(json.dumps({**data, "key": "0" * 20}))


@pytest.mark.parametrize("how", ["checkpoint a folder", "record of the wrong shape", "bytes flipped",
                                 "another seed's checkpoint", "record without its digest", "record of another entry"])
def test_a_damaged_checkpoint_is_said_rebuilt_and_gives_the_same_figures(tmp_path, write_scenario, run_quick,
                                                                        cache_dir, how):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}]\n")
    status, _, _, first = run_quick(path)
    assert status == 0
    tamper_checkpoint(cache_dir, how)
    status, out, err, second = run_quick(path)
    assert status == 0 and "Traceback" not in out + err, out + err
    said = [line for line in err.splitlines() if "cached checkpoint" in line and "not used, made again" in line]
    assert len(said) == 1, err
    assert second["variants"][0]["weights"]["source"] == "trained"
    assert second["variants"][0]["accuracy"] == first["variants"][0]["accuracy"]
    status, _, err, third = run_quick(path)  # the rebuilt entry is whole again: used
    assert third["variants"][0]["weights"]["source"] == "cache" and "not used" not in err


def tamper_onnx(cache: Path, how: str) -> None:
    for exported in sorted(cache.glob("onnx/*.onnx")):
        if how == "export a folder":
            exported.unlink()
            exported.mkdir()
        elif how == "export truncated":
            exported.write_bytes(exported.read_bytes()[:200])
        elif how == "export bytes flipped":
            data = bytearray(exported.read_bytes())
            data[-40] ^= 0x01
            exported.write_bytes(bytes(data))
        elif how == "record not JSON":
            exported.with_suffix(".json").write_text("{")
        elif how == "record a folder":
            exported.with_suffix(".json").unlink()
            exported.with_suffix(".json").mkdir()


@needs_onnx
@pytest.mark.parametrize("how", ["export a folder", "export truncated", "export bytes flipped", "record not JSON",
                                 "record a folder"])
def test_a_damaged_onnx_export_is_said_rebuilt_and_gives_the_same_figures(tmp_path, write_scenario, run_quick,
                                                                         cache_dir, how):
    variants = "[{name: ort, backend: onnxruntime}, {name: dyn, backend: onnxruntime, compress: [ort_int8_dynamic]}]"
    path = write_scenario(f"model: {{name: mlp, hidden: [8]}}\nvariants: {variants}\n")
    status, _, _, first = run_quick(path)
    assert status == 0 and len(list(cache_dir.glob("onnx/*.onnx"))) >= 2  # the export and its quantized copy
    tamper_onnx(cache_dir, how)
    status, out, err, second = run_quick(path)
    assert status == 0 and "Traceback" not in out + err, out + err
    assert "cached ONNX file" in err and "not used, made again" in err, err
    for before, after in zip(first["variants"], second["variants"], strict=False):
        assert after["status"] == "ok" and after["accuracy"] == before["accuracy"], after.get("error")


@pytest.mark.parametrize("how", ["a byte flipped", "a file gone", "a file added", "seal not JSON", "seal gone",
                                 "folder a file"])
def test_a_damaged_cached_folder_is_said_and_removed(tmp_path, how):
    """The folder caches (SmolLM2's float weights from its GGUF, onnxruntime-genai's converted
    model): sealed with each file's size and digest, checked before use."""
    from suite.build import weights

    folder = tmp_path / "cache" / "gguf" / "model-1"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "sub" / "tokenizer.json").write_text("{}")
    weights.seal_folder(folder, "made here")
    said: list[str] = []
    weights.use_cache_root(tmp_path / "cache", said.append)
    assert weights.sealed_folder(folder, "float folder") and not said
    if how == "a byte flipped":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[100] ^= 1
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif how == "a file gone":
        (folder / "sub" / "tokenizer.json").unlink()
    elif how == "a file added":
        (folder / "extra.bin").write_bytes(b"x")
    elif how == "seal not JSON":
        (folder / weights.SEAL).write_text("de-quantized from x.gguf\n")  # what an older suite wrote
    elif how == "seal gone":
        (folder / weights.SEAL).unlink()
    else:
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    assert not weights.sealed_folder(folder, "float folder")
    assert not folder.exists() and len(said) == 1 and said[0].startswith(f"cached float folder {folder} ")
    assert said[0].endswith(": not used, made again")


# --- 6. damaged search trials on --resume, grid steps, Ctrl-C during a search --------------------

SEARCH = """model: {name: mlp, hidden: [16, 16]}
measure: {batch_sizes: [1]}
variants:
  - name: s
    compress: [int8_dynamic]
    search: {goal: {min_agreement: 1.0}, strategy: layer_fallback, sensitivity: trials, max_trials: 3}
"""


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.pop("seconds"), "trials[1]: 'seconds' is missing"),
    (lambda t: t.update(speed_ms="fast"), "trials[1]: 'speed_ms' is 'fast', not a number of 0 or more"),
    (lambda t: t.update(seconds=-5), "trials[1]: 'seconds' is -5"),
    (lambda t: t.update(val_accuracy=[0.5]), "trials[1]: 'val_accuracy' is [0.5]"),
    (lambda t: t.update(kept_float="fc1"), "trials[1]: 'kept_float' is not a list"),
    (lambda t: t.update(phase=None), "trials[1]: 'phase' is missing or not text"),
    (lambda t: t.update(error=3), "trials[1]: 'error' is not text"),
])
def test_a_damaged_saved_trial_is_named_and_measured_again(tmp_path, edit, expected):
    from suite.build.search import replayable

    good = {"key": "[]", "phase": "fallback", "seconds": 1.5, "speed_ms": 0.2, "val_accuracy": 0.9, "agreement": 1.0,
            "kept_float": ["fc1"], "steps": [], "error": None}
    bad = dict(good)
    edit(bad)
    said: list[str] = []
    assert replayable([good, bad, good], "search/s.json", said.append) == [good, good]
    assert len(said) == 1 and said[0].startswith(f"search/s.json: {expected}"), said
    assert said[0].endswith(": that trial is measured again")


@pytest.mark.parametrize("damage", ["a folder", "no seconds"])  # (each field's damage: the test above)
def test_a_search_resumes_over_damaged_trials(tmp_path, write_scenario, run_quick, cache_dir, damage):
    status, *_ = run_quick(write_scenario(SEARCH), "--in-process")
    assert status == 0
    [run] = (tmp_path / "reports").glob("*/*")
    [saved] = run.glob("search/*.json")
    (run / "results.json").unlink()
    shutil.rmtree(run / "variants")  # as if interrupted before the variant was saved
    if damage == "a folder":
        saved.unlink()
        saved.mkdir()
    elif damage == "no seconds":
        data = json.loads(saved.read_text())
        data["trials"][1].pop("seconds")
        saved.write_text(json.dumps(data))
    assert main(["run", "--resume", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["variants"][0]["status"] == "ok"
    assert saved.is_file() and json.loads(saved.read_text())["trials"]


@pytest.mark.parametrize(("grid", "expected"), [
    ("[{step: 3, param: sparsity, values: [0.1]}]", "search.grid[0].step: 3: the variant has 1 compression step(s)"),
    ("[{step: 1, param: sparsity, values: [0.1]}]", "search.grid[0].step: 1: the variant has 1"),
    ("[{step: 0, param: sparsity, values: [0.1]}, {step: 9, param: sparsity, values: [0.2]}]", "search.grid[1].step: 9"),
    ("[{step: -1, param: sparsity, values: [0.1]}]", "search.grid"),
    ("[{step: 0, param: sparsity, values: [7]}]", "sparsity"),
])
def test_a_grid_step_written_by_hand_is_checked_at_validate(write_scenario, capsys, grid, expected):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nvariants:\n  - name: g\n    compress: [{method: magnitude, "
                          f"sparsity: 0.5}}]\n    search: {{goal: {{max_accuracy_drop: 0.1}}, strategy: grid, grid: {grid}}}\n")
    one_error_line(capsys, main(["validate", str(path)]), expected)


def test_ctrl_c_during_a_search_exits_130_with_the_resume_command(tmp_path):
    """Even where SIGINT came in ignored (a shell's background job), as a probe once started it."""
    (tmp_path / "s.yaml").write_text(SEARCH.replace("max_trials: 3", "max_trials: 40"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = f"trap '' INT; exec {sys.executable} -m suite run s.yaml --quick --out out --cache-dir cache"
    child = subprocess.Popen(["bash", "-c", command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("out/*/*/search/*.json")):
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "Traceback" not in err and "finish the run with: python -m suite run --resume " in err, err


# --- 7. a full disk -------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs (root, and a kernel that lets this process mount one), unmounted after; the
    tests fill it to what they leave free (3 MB: the report, plotly inside, does not fit)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()[:100]}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path, leave_kib: int) -> Path:
    """A file that leaves about `leave_kib` KiB free on `folder`'s file system."""
    free = shutil.disk_usage(folder).free // 1024
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, (free - leave_kib)) * 1024)
    return filler


@pytest.mark.parametrize(("leave_kib", "launcher"), [(3072, "in_process"), (40, "in_process"), (8, "in_process"),
                                                    (0, "in_process"), (40, "subprocess")])
def test_a_full_disk_is_one_line_what_was_saved_stays_valid_and_the_run_resumes(small_disk, tmp_path, write_scenario,
                                                                               capsys, leave_kib, launcher):
    path = write_scenario("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}, {name: b, compress: [int8_dynamic]}]\n")
    filler = fill(small_disk, leave_kib)
    code = main(["run", str(path), "--quick", "--launcher", launcher, "--out", str(small_disk / "out"), "--cache-dir",
                 str(tmp_path / "cache")])
    line = error_line(capsys, code, "no space left on the device")
    runs = list(small_disk.glob("out/*/*"))
    if "the run could not start" in line:
        assert not runs  # nothing half made is left
        return
    [run] = runs
    assert f"finish the run with: python -m suite run --resume {run}" in line
    if (run / "results.json").exists():  # what was saved is whole
        json.loads((run / "results.json").read_text())
    filler.unlink()
    assert main(["run", "--resume", str(run)]) == 0
    assert [v["status"] for v in json.loads((run / "results.json").read_text())["variants"]] == ["ok", "ok"]


def test_reports_and_comparisons_onto_a_full_disk_are_one_line(small_disk, tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}]\n")
    assert main(["run", str(tmp_path / "s.yaml"), "--quick", "--in-process", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    [results] = tmp_path.glob("out/*/*/results.json")
    fill(small_disk, 0)
    for args in (["report", str(results), "-o", str(small_disk / "r.html")],
                 ["compare", str(results), str(results), "--out", str(small_disk / "cmp")]):
        error_line(capsys, main(args), "no space left on the device")  # (compare may warn of a busy machine first)


# --- 8 and 10. large and special results files, unbounded waits ----------------------------------

def test_a_large_results_file_reports_in_bounded_time(tmp_path):
    """A run of 1,500 searched variants (a page once drew a figure for each, and took 35 s for
    4,793): the page details the first 50 and says where the rest are."""
    from suite.report.html import DETAIL_LIMIT

    trial = {"index": 1, "phase": "fallback", "kept_float": ["fc1"], "value": None, "val_accuracy": 0.9,
             "perplexity": None, "agreement": 0.99, "speed_ms": 0.1, "meets": True, "seconds": 0.5,
             "replayed": False, "error": None, "steps": []}
    search = {"strategy": "layer_fallback", "goal": {"min_agreement": 0.9}, "by": "p50_ms", "batch_size": 1,
              "split": "validation", "met": True, "stopped_by": "done", "chosen": 1, "kept_float": ["fc1"],
              "value": None, "seconds": 1.0, "trials": [dict(trial, index=i) for i in range(20)], "ranking": None,
              "replayed": 0}
    assert main(["run", str(write_small(tmp_path)), "--quick", "--in-process", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    [results] = tmp_path.glob("out/*/*/results.json")
    data = json.loads(results.read_text())
    variant = data["variants"][0]
    data["variants"] = [dict(variant, name=f"v{i}", search=search, compress=[{"method": "int8_dynamic"}])
                        for i in range(1500)]
    big = tmp_path / "big" / "results.json"
    big.parent.mkdir()
    big.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "suite", "report", str(big), "-o", str(tmp_path / "big.html")],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "big.html").read_text()
    assert f"{1500 - DETAIL_LIMIT:,} more searches are left out of this page" in page


def write_small(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text("model: {name: mlp, hidden: [8]}\nvariants: [{name: a}]\n")
    return path


def test_special_and_oversized_results_files_are_refused_unread(tmp_path, capsys):
    from suite.results import MAX_JSON_BYTES

    fifo = tmp_path / "fifo" / "results.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: nothing is written, and nothing must be read
    folder = tmp_path / "folder.json"
    folder.mkdir()
    (folder / "results.json").mkdir()
    for bad, expected in ((fifo, "not a regular file (a FIFO)"), (fifo.parent, "not a regular file (a FIFO)"),
                          (huge, "MiB, more than the 128 MiB suite reads"), (folder, "not a regular file (a folder)")):
        for args in (["report", str(bad)], ["compare", str(bad), str(bad)], ["explain", str(bad), "a"],
                     ["gate", "--baseline", str(bad), str(bad)]):
            started = time.monotonic()
            code = main(args + (["--out", str(tmp_path / "cmp")] if args[0] in ("compare", "gate") else []))
            one_error_line(capsys, code, expected)
            assert time.monotonic() - started < 10


@pytest.mark.parametrize(("service_ms", "bound_ms", "most_trials"), [
    (1.0, 0.001, 4), (10.0, 0.5, 4), (0.1, 1e-6, 4), (2.0, 1.0, 4), (1.0, 0.0005, 4)])
def test_server_mode_stops_once_a_light_load_misses_the_bound(service_ms, bound_ms, most_trials):
    """A bound no load can meet: the search ends at a light load instead of halving the rate (and
    doubling each trial's time) until the variant's time-out."""
    from suite.measure import load

    rates: list[float] = []

    def run_at(rate: float) -> list[float]:
        rates.append(rate)
        return [service_ms / 1e3] * 200  # every query takes the service time: never within the bound

    found = load.search_rate(run_at, service_ms / 1e3, bound_ms, steps=60)
    assert found["max_rate_qps"] is None and len(rates) <= most_trials
    assert min(rates) * service_ms / 1e3 <= load.LIGHT_LOAD
    served = load.search_request_rate(lambda rate: [(1.0, [1.0])] * 10, 0.01, bound_ms, bound_ms, steps=60)
    assert served["max_rate_qps"] is None and len(served["trials"]) <= most_trials
