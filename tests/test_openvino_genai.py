"""Backend openvino_genai (OpenVINO GenAI's LLMPipeline, NNCF's weight compression) on the tiny
Llama folder the tests write and on the built-in GPT-2: the converted fp32 model scores and
decodes as the torch model does (KL divergence near zero, the same greedy tokens), int8 and int4
weights shrink it and stay close, the data-aware int4 methods run on the training split, the KV
cache's precision is a setting that shows in the cache's size and the divergence, the build is
cached, and every class of bad setting is a one-line error or a failed variant with its reason."""

from __future__ import annotations

import pytest

from suite.__main__ import main
from tests.conftest import llama_scenario

pytest.importorskip("openvino_genai")
pytest.importorskip("nncf")
torch = pytest.importorskip("torch")

GPT2 = "{name: gpt2, layers: 1, hidden: 32, heads: 2, context: 128, vocab: 400}"


def scenario(folder, variants: str) -> str:
    return llama_scenario(folder, variants, "ovg")


def test_openvino_genai_decodes_as_the_torch_model_and_compressed_weights_stay_close(llama_folder, write_scenario,
                                                                                     run_quick):
    path = write_scenario(scenario(llama_folder, f"""
          - {{name: ov, backend: openvino_genai}}
          - {{name: ov-int8, backend: {{name: openvino_genai, weights: int8}}}}
          - {{name: ov-int4, backend: {{name: openvino_genai, weights: int4_sym, group_size: 16}}}}
          - {{name: ov-int4-awq, backend: {{name: openvino_genai, weights: int4_asym, group_size: 16, awq: true,
                                            scale_estimation: true, calibration_samples: 8}}}}
          - {{name: ov-int4-gptq, backend: {{name: openvino_genai, weights: int4_sym, group_size: 16, gptq: true,
                                             calibration_samples: 8, calibration_tokens: 32}}}}
          - {{name: ov-kv-u8, backend: {{name: openvino_genai, kv_cache_precision: u8}}}}
          - {{name: ov-int8-head, backend: {{name: openvino_genai, weights: int8, keep_float: [lm_head]}}}}
          - {{name: gpt2-fp32, model: {GPT2}}}
          - {{name: gpt2-ov, model: {GPT2}, backend: openvino_genai}}
        """))
    status, out, _, results = run_quick(path, "--in-process")
    assert status == 0 and all(v["status"] == "ok" for v in results["variants"]), out
    v = {variant["name"]: variant for variant in results["variants"]}
    ppl = {name: variant["generation"]["perplexity"]["perplexity"] for name, variant in v.items()}
    # The same float weights through OpenVINO's kernels: the same distributions, the same greedy text.
    for name, reference in (("ov", "fp32"), ("gpt2-ov", "gpt2-fp32")):
        fidelity = v[name]["fidelity"]
        assert v[name]["agreement_with"] == reference and ppl[name] == pytest.approx(ppl[reference], rel=1e-4)
        assert fidelity["kld_mean"] < 1e-5 and fidelity["top1_agreement"] == 1.0 and fidelity["greedy_agreement"] == 1.0
    # Compressed weights: smaller files and fewer bytes read per token, close to the float model's scores.
    assert v["ov-int4"]["size_bytes"] < v["ov-int8"]["size_bytes"] < v["ov"]["size_bytes"]
    read = {name: v[name]["generation"]["weights_read_bytes"] for name in ("ov", "ov-int8", "ov-int4")}
    assert read["ov-int4"] < read["ov-int8"] < read["ov"] / 3
    # The float model reads its weights less the input embedding table, which it only looks up.
    assert read["ov"] == pytest.approx(v["fp32"]["generation"]["weights_read_bytes"], rel=0.05)
    for name in ("ov-int8", "ov-int4", "ov-int4-awq", "ov-int4-gptq"):
        fidelity = v[name]["fidelity"]
        assert 0 < fidelity["kld_mean"] < 0.01 and fidelity["top1_agreement"] > 0.5, (name, fidelity)
        assert ppl[name] == pytest.approx(ppl["fp32"], rel=0.02)
    assert v["ov-int8"]["fidelity"]["kld_mean"] < v["ov-int4"]["fidelity"]["kld_mean"]
    # The output head left in float (400 x 64 weights: 4 bytes each, not 1); the setting is recorded.
    head = v["ov-int8-head"]
    assert head["generation"]["weights_read_bytes"] - read["ov-int8"] == pytest.approx(400 * 64 * 3, rel=0.05)
    assert head["backend_info"]["keep_float"] == ["lm_head"]
    info = {name: v[name]["backend_info"] for name in v}
    assert info["ov"]["weights"] == "fp32" and "group_size" not in info["ov"]
    assert info["ov-int4-awq"]["awq"] and info["ov-int4-awq"]["scale_estimation"]
    assert info["ov-int4-awq"]["calibration_samples"] == 8 and "calibration_samples" not in info["ov-int4"]
    assert info["ov-int4-gptq"]["gptq"] and info["ov-int4-gptq"]["calibration_tokens"] == 32
    # The precisions OpenVINO compiled it with, read back; the KV cache's precision shows in its size
    # and in the divergence (the logits read the cached keys and values of earlier positions).
    assert info["ov"]["compiled_inference_precision_hint"] == "f32" and info["ov"]["compiled_kv_cache_precision"] == "f32"
    assert info["ov-kv-u8"]["compiled_kv_cache_precision"] == "u8"
    assert info["ov-kv-u8"]["build"].startswith("from the cache")  # the same file: precision is a runtime property
    cache = {name: [c["bytes"] for c in v[name]["generation"]["kv_cache"]] for name in ("ov", "ov-kv-u8", "fp32")}
    assert cache["ov"] == cache["fp32"] and [b // 4 for b in cache["ov"]] == cache["ov-kv-u8"]
    assert v["ov-kv-u8"]["fidelity"]["kld_mean"] > v["ov"]["fidelity"]["kld_mean"]
    # Timed per token by the pipeline's own clock, at every shape, in the same units as eager's.
    for name in ("ov", "ov-int4", "gpt2-ov"):
        rows = {(r["metric"], r["batch_size"]): r for r in v[name]["latency"]}
        assert set(rows) == {(m, b) for m in ("ttft", "tpot", "request") for b in (1, 2)} or name == "gpt2-ov"
        # The pipeline's clock in ms as eager's: a whole request is its first token, its 3 steps and
        # the pipeline's own work around them (2.6x the two for GPT-2's 0.2 ms steps on busy cores);
        # a unit slipped would be 1,000x off. (The ratio to eager's own TPOT is a speed, not a unit,
        # and moved 60x on two busy cores.)
        ttft, tpot, request = (rows[(metric, 1)]["p50_ms"] for metric in ("ttft", "tpot", "request"))
        assert 0.1 < request / (ttft + 3 * tpot) < 10, (name, ttft, tpot, request)


@pytest.mark.parametrize("backend, message", [
    ("{name: openvino_genai, weights: int8, awq: true}", "variants[1].backend.awq: data-aware compression applies to "
                                                          "int4 weights"),
    ("{name: openvino_genai, weights: int4_sym, awq: true, gptq: true}", "awq and gptq: NNCF applies one of them"),
    ("{name: openvino_genai, weights: int3}", "variants[1].backend.weights"),
    ("{name: openvino_genai, group_size: 0}", "variants[1].backend.group_size: -1 or a positive count"),
    ("{name: openvino_genai, group_size: -2}", "variants[1].backend.group_size"),
    ("{name: openvino_genai, ratio: 0}", "variants[1].backend.ratio"),
    ("{name: openvino_genai, kv_cache_precision: u4}", "variants[1].backend.kv_cache_precision"),
    ("{name: openvino_genai, calibration_samples: 0}", "variants[1].backend.calibration_samples"),
    ("{name: openvino_genai, threads: 0}", "variants[1].backend.threads"),
    ("{name: openvino_genai, device: GPU}", "variants[1].backend: unknown key 'device'"),
    ("{name: openvino_genai, weights: int8, keep_float: ['(']}", "variants[1].backend.keep_float[0]: not a regular"),
    ("{name: openvino_genai, keep_float: [lm_head]}", "variants[1].backend.keep_float: names layers to leave in "
                                                      "float, but weights is fp32"),
])
def test_bad_openvino_genai_settings_are_one_line_errors(llama_folder, write_scenario, capsys, backend, message):
    path = write_scenario(scenario(llama_folder, f"          - {{name: x, backend: {backend}}}\n"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_settings_that_do_not_fit_the_model_fail_that_variant_with_the_reason(llama_folder, write_scenario, run_quick):
    path = write_scenario(scenario(llama_folder, """
          - {name: groups, backend: {name: openvino_genai, weights: int4_sym, group_size: 48}}
          - {name: dynamic, backend: openvino_genai, measure: {generate: {prompt_lens: [8], new_tokens: 4, cache: dynamic}}}
          - {name: nothing, backend: {name: openvino_genai, weights: int8, keep_float: [no_such_layer]}}
        """))
    status, out, err, results = run_quick(path, "--in-process")
    assert results is not None, out + err
    fp32, groups, dynamic, nothing = results["variants"]
    assert status == 2 and fp32["status"] == "ok"
    assert groups["status"] == "failed" and "NNCF could not compress the weights" in groups["error"]
    assert "group size value 48" in groups["error"] and "\n" not in groups["error"]
    assert dynamic["status"] == "failed" and "generate.cache 'dynamic'" in dynamic["error"]
    assert nothing["status"] == "failed" and "no_such_layer" in nothing["error"] and "\n" not in nothing["error"]
