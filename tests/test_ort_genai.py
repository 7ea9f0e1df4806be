"""Backend ort_genai (ONNX Runtime through onnxruntime-genai) on a tiny Llama folder the test
writes: the converted fp32 graph scores and decodes as the torch model does, int8 / int4 weights
shrink it, a pruned model converts, the build is cached, and every class of bad input is a
one-line error. SmolLM2 itself runs on it in tests/test_scenarios.py (variant ort-int4)."""

from __future__ import annotations

import pytest

from suite.__main__ import main
from tests.conftest import llama_scenario

pytest.importorskip("onnxruntime_genai")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def scenario(folder, variants: str) -> str:
    return llama_scenario(folder, variants, "ortg")


def test_ort_genai_decodes_as_the_torch_model_and_its_int_weights_shrink_it(llama_folder, write_scenario, run_quick):
    path = write_scenario(scenario(llama_folder, """
          - {name: ort, backend: ort_genai}
          - {name: ort-int8, backend: {name: ort_genai, precision: int8, accuracy_level: 1}}
          - {name: ort-int4, backend: {name: ort_genai, precision: int4, block_size: 16}}
          - {name: ort-pruned, backend: ort_genai, compress: [{method: magnitude, sparsity: 0.5}]}
          - {name: ort-uint4, backend: {name: ort_genai, precision: int4, symmetric: false}}
        """))
    status, out, _, results = run_quick(path, "--in-process")
    fp32, ort, int8, int4, pruned, uint4 = results["variants"]
    assert status == 0 and all(v["status"] == "ok" for v in results["variants"]), out
    ppl = {v["name"]: v["generation"]["perplexity"]["perplexity"] for v in results["variants"]}
    # The same float weights through ONNX Runtime's kernels: the same scores, the same greedy text.
    assert ppl["ort"] == pytest.approx(ppl["fp32"], rel=1e-4)
    assert ort["agreement"] == 1.0 and ort["agreement_with"] == "fp32"
    assert ppl["ort-int8"] == pytest.approx(ppl["fp32"], rel=0.01)  # 8 bits, fp32 products
    assert ppl["ort-pruned"] != pytest.approx(ppl["fp32"], rel=1e-4)  # the pruned weights were converted
    assert int4["size_bytes"] < int8["size_bytes"] < ort["size_bytes"]  # the graph's own files
    assert ort["backend_info"]["precision"] == "fp32" and "block_size" not in ort["backend_info"]
    assert int4["backend_info"]["precision"] == "int4" and int4["backend_info"]["block_size"] == 16
    assert int4["backend_info"]["is_symmetric"] and not uint4["backend_info"]["is_symmetric"]
    assert uint4["size_bytes"] < int8["size_bytes"] and ppl["ort-uint4"] == pytest.approx(ppl["fp32"], rel=0.01)
    assert int8["backend_info"]["accuracy_level"] == 1 and ort["backend_info"]["onnxruntime"]
    # Bandwidth counts the weights a step reads: this Llama's input table (not tied to its head) is
    # only looked up, on either backend; the graph's own files hold it too.
    table = 400 * 64 * 4
    assert fp32["generation"]["weights_read_bytes"] == fp32["size_bytes"] - table
    assert ort["size_bytes"] - table - 200_000 < ort["generation"]["weights_read_bytes"] <= ort["size_bytes"] - table
    for variant in (ort, int8, int4, pruned):
        assert {(r["metric"], r["batch_size"]) for r in variant["latency"]} == {
            (m, b) for m in ("ttft", "tpot", "request") for b in (1, 2)}
        assert all(r["p50_ms"] > 0 for r in variant["latency"])
        # 2 layers x keys and values x 2 kv heads x 12 positions x 16 dims x 4 bytes, per sequence
        assert [c["bytes"] for c in variant["generation"]["kv_cache"]] == [6144, 12288]
        assert [t["new_tokens"] for t in variant["generation"]["texts"]] == [
            variant["generation"]["settings"]["text_tokens"]] * len(variant["generation"]["texts"])
    # A second run converts nothing: the same model and settings come from the cache.
    status, _, _, again = run_quick(path, "--in-process", "--only", "ort")
    assert status == 0 and again["variants"][0]["backend_info"]["build"].startswith("from the cache")
    assert again["variants"][0]["generation"]["perplexity"] == ort["generation"]["perplexity"]


def test_ort_genai_refuses_a_model_its_builder_cannot_convert(write_scenario, run_quick):
    path = write_scenario("""
        name: gpt2-on-ort
        model: {name: gpt2_random, layers: 1, hidden: 32, heads: 2, context: 64, vocab: 300}
        measure: {batch_sizes: [1], generate: {prompt_lens: [8], new_tokens: 4}}
        variants:
          - {name: ort, backend: ort_genai}
        """)
    status, _, _, results = run_quick(path, "--in-process")
    [ort] = results["variants"]
    assert status == 2 and ort["status"] == "failed" and ort["error_type"] == "SuiteError"
    assert "builder cannot convert GPT2LMHeadModel" in ort["error"] and "\n" not in ort["error"]


@pytest.mark.parametrize("variant, message", [
    ("{name: x, backend: {name: ort_genai, precision: int3}}", "variants[1].backend.precision"),
    ("{name: x, backend: {name: ort_genai, block_size: 48}}", "variants[1].backend.block_size"),
    ("{name: x, backend: {name: ort_genai, accuracy_level: 7}}", "variants[1].backend.accuracy_level"),
    ("{name: x, backend: {name: ort_genai, threads: 0}}", "variants[1].backend.threads"),
    ("{name: x, backend: {name: ort_genai, fast: true}}", "variants[1].backend: unknown key 'fast'"),
    ("{name: x, backend: ort_genai, compress: [bf16]}", "variants[1].backend: backend 'ort_genai' cannot run"),
    ("{name: x, backend: ort_genai, compress: [int8_dynamic]}", "variants[1].backend: backend 'ort_genai' cannot run"),
])
def test_bad_ort_genai_settings_are_one_line_errors(llama_folder, write_scenario, capsys, variant, message):
    path = write_scenario(scenario(llama_folder, f"          - {variant}\n"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_ort_genai_refuses_a_cache_kind_it_does_not_have_and_a_classifier(llama_folder, write_scenario, run_quick,
                                                                         capsys):
    path = write_scenario(scenario(llama_folder, "          - {name: ort, backend: ort_genai}\n").replace(
        "new_tokens: 4}", "new_tokens: 4, cache: static}"))
    status, _, _, results = run_quick(path, "--in-process", "--only", "ort")
    [ort] = results["variants"]
    assert status == 2 and ort["status"] == "failed" and "keeps its own KV cache" in ort["error"]
    classifier = write_scenario("""
        name: mlp-on-ort-genai
        model: mlp
        variants:
          - {name: x, backend: ort_genai}
        """, "classifier.yaml")
    assert main(["validate", str(classifier)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ort_genai" in err and "variants[0]" in err, err
