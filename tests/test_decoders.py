"""Generative decoders: the text corpus, tokenizing, greedy decoding through the KV cache,
perplexity, greedy fidelity, the decoder budget of `select`, the user's own causal LM, and every
class of bad input a decoder scenario can hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite.__main__ import main
from suite.datasets.text import TextFileParams, TextParams, load_file, load_pydoc
from suite.errors import SuiteError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def corpus():
    return load_pydoc(TextParams())


@pytest.fixture(scope="module")
def data(corpus):
    from models.nets.gpt2 import bpe_tokenizer
    from suite.lm import tokenized

    return tokenized(corpus, bpe_tokenizer(corpus.train, 400), "test BPE")


def tiny_gpt2(data, seed=0):
    from models.nets.gpt2 import gpt2

    torch.manual_seed(seed)
    return gpt2(data.vocab_size, 1, 32, 2, 128, data.tokenizer.eos_token_id).eval()


def test_pydoc_splits_are_seeded_disjoint_and_cover_the_text(corpus):
    again = load_pydoc(TextParams())
    assert again == corpus
    train, val, test = set(corpus.train), set(corpus.val), set(corpus.test)
    assert not (train & val or train & test or val & test)
    assert len(test) >= 10 and len(val) >= 10 and len(train) > 5 * len(test)
    other = load_pydoc(TextParams(split_seed=1))
    assert set(other.test) != test
    assert "pydoc_data" in corpus.source


def test_text_file_bad_inputs_are_one_line_errors(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("just one paragraph")
    with pytest.raises(SuiteError, match="too little text"):
        load_file(TextFileParams(path=short))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(SuiteError, match="not UTF-8"):
        load_file(TextFileParams(path=binary))
    good = tmp_path / "good.txt"
    good.write_text("\n\n".join(f"Paragraph {i}: " + "words " * 40 for i in range(30)))
    text = load_file(TextFileParams(path=good, passage_chars=200))
    assert len(text.train) + len(text.val) + len(text.test) == 30
    assert load_file(TextFileParams(path=good, passage_chars=200)) == text  # fixed by its seed
    assert not (set(text.train) & set(text.test) or set(text.val) & set(text.test) or set(text.train) & set(text.val))
    assert text.source.startswith("user text: good.txt")


def test_tokenized_streams_and_windows(data):
    assert data.train_ids.dtype == torch.int64 and int(data.train_ids.max()) < data.vocab_size
    assert data.tokenizer.decode(data.test_ids[:50].tolist()).strip()
    windows = data.windows("test", 16, 3)
    assert windows.shape == (3, 16) and torch.equal(windows[1], data.test_ids[16:32])
    wrapped = data.windows("val", len(data.val_ids), 2)  # longer than the split: wraps around
    assert torch.equal(wrapped[1], data.val_ids)
    assert "sha1" in data.tokenizer_id and data.describe()["tokens"]["test"] == len(data.test_ids)


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_greedy_decoding_through_the_cache_matches_full_forward_passes(data, cache):
    from suite.lm import Decoder

    model = tiny_gpt2(data)
    prompt = data.windows("test", 12, 2)
    tokens = Decoder(model, "cpu", cache).generate(prompt, 6)
    ids = prompt
    with torch.inference_mode():  # without any cache: the whole sequence again for every token
        for _ in range(6):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(tokens, ids[:, 12:])


def test_fp8_kv_cache_holds_a_quarter_of_the_bytes_and_nearly_the_same_logits(data):
    from transformers import DynamicCache, QuantizedCache

    from suite.lm import Decoder

    model = tiny_gpt2(data)
    prompt = data.windows("test", 12, 2)
    plain, fp8 = Decoder(model, "cpu", "dynamic"), Decoder(model, "cpu", "fp8")
    first, second = plain.generate(prompt, 6), fp8.generate(prompt, 6)
    assert torch.equal(first[:, 0], second[:, 0])  # the prefill attends to its own float states
    assert 0 < fp8.cache_bytes() < 0.3 * plain.cache_bytes()
    logits = []
    for cache in (DynamicCache(config=model.config), QuantizedCache("fp8", config=model.config)):
        with torch.inference_mode():
            model(input_ids=prompt, cache=cache, use_cache=True)
            logits.append(model(input_ids=prompt[:, :1], position_ids=torch.full((1, 1), 12), cache=cache,
                                use_cache=True).logits)
    error = float((logits[0] - logits[1]).abs().max() / logits[0].abs().max())
    assert 0 < error < 0.05  # de-quantized keys and values: close, not equal


@pytest.mark.parametrize("steps", [["int8_dynamic_activation"], ["intx_weight_only"], ["bf16", "int8_weight_only"]])
def test_torchao_methods_decode_close_to_the_float_model(data, steps):
    from suite.compress import CompressContext, compress
    from suite.config.scenario import PluginRef
    from suite.lm import Decoder, perplexity
    from suite.registry import METHODS

    model = tiny_gpt2(data)
    reference = perplexity(Decoder(model, "cpu", "dynamic"), data, context=32, max_tokens=200, batch_size=4)
    quantized = tiny_gpt2(data)
    for name in steps:
        quantized, _ = compress(quantized, PluginRef(name, METHODS.get(name).Params()),
                                CompressContext(data=data, seed=0, train_recipe={}, task="generate"))
    decoder = Decoder(quantized, "cpu", "dynamic")
    assert decoder.generate(data.windows("test", 12, 2), 5).shape == (2, 5)
    ppl = perplexity(decoder, data, context=32, max_tokens=200, batch_size=4)["perplexity"]
    assert ppl != reference["perplexity"] and abs(ppl / reference["perplexity"] - 1) < 0.05


def test_int4_cpu_packs_every_linear_that_fits_and_decodes_close_to_the_float_model(data):
    """torch's own packed int4 CPU kernel: every Linear of a small Llama packed (two weights a byte),
    its divergence from the float model small, compiled and pickled copies give the same logits,
    a layer kept in float stays a Linear, and a model with no layer the kernel takes is refused."""
    import pickle

    from transformers import LlamaConfig, LlamaForCausalLM

    from suite.compress import CompressContext, compress
    from suite.config.scenario import PluginRef
    from suite.lm import Decoder, perplexity
    from suite.measure.footprint import serialized_size_bytes
    from suite.registry import METHODS

    def llama():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=data.vocab_size, hidden_size=64, intermediate_size=128,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            max_position_embeddings=128, initializer_range=0.2)).eval()

    def int4(model, **settings):
        step = PluginRef("int4_cpu", METHODS.get("int4_cpu").Params(**settings))
        return compress(model, step, CompressContext(data=data, seed=0, train_recipe={}, task="generate"))

    reference = perplexity(Decoder(llama(), "cpu", "dynamic"), data, 32, 256, 4, keep=True)
    packed, record = int4(llama())
    assert len(record["quantized_layers"]) == 2 * 7 + 1 and not any(
        type(m) is torch.nn.Linear for m in packed.modules())
    # The kernel computes what its de-quantized weights would: each packed layer's weights read back
    # through it (the identity's product) into the float model's Linear.
    rounded = llama()
    with torch.no_grad():
        for name, module in packed.named_modules():
            if type(module).__name__ == "PackedInt4Linear":
                weight = module(torch.eye(module.in_features)).t()
                rounded.get_submodule(name).weight.copy_(weight)
    scored = perplexity(Decoder(packed, "cpu", "dynamic"), data, 32, 256, 4, reference=reference["summary"])
    fake = perplexity(Decoder(rounded, "cpu", "dynamic"), data, 32, 256, 4, reference=reference["summary"])
    # (its products run with bf16 activations: close to the float32 product of the rounded weights)
    assert scored["perplexity"] == pytest.approx(fake["perplexity"], rel=1e-2)
    assert scored["divergence"]["kld_mean"] == pytest.approx(fake["divergence"]["kld_mean"], rel=0.1)
    assert scored["divergence"]["kld_mean"] > 0.01  # 4 bits of random weights: far enough to tell
    table = data.vocab_size * 64 * 4  # the embedding table stays in float
    # Half a byte a weight and a float scale and zero point per 32 (0.75 of 4 bytes), and each tensor's header.
    assert serialized_size_bytes(packed) - table < 0.25 * (serialized_size_bytes(llama()) - table)
    ids = data.windows("test", 16, 2)
    with torch.inference_mode():
        eager = packed(input_ids=ids).logits
        assert torch.allclose(torch.compile(packed)(input_ids=ids).logits, eager, atol=1e-2)
        assert torch.equal(pickle.loads(pickle.dumps(packed))(input_ids=ids).logits, eager)
    kept, record = int4(llama(), keep_float=("lm_head",))
    assert type(kept.lm_head) is torch.nn.Linear and "lm_head" not in record["quantized_layers"]
    with pytest.raises(SuiteError, match="no Linear layer has an output width that is a multiple of 16"):
        int4(torch.nn.Sequential(torch.nn.Linear(30, 10)))


def test_int4_cpu_keeps_the_grid_of_weights_already_in_4_bits():
    """Weights made from 4-bit levels (as the Q4_1 file's) whose groups miss the lowest or highest
    level keep their own step instead of being quantized again on the group's (max - min) / 15;
    on weights that came from no grid, the chosen step fits no worse than that one."""
    from suite.compress.wrappers import PackedInt4Linear

    torch.manual_seed(0)
    n, k = 64, 128
    step = (torch.rand(n, k // 32, 1) * 0.01 + 0.001).bfloat16().float()
    low = (-torch.rand(n, k // 32, 1) * 0.08).bfloat16().float()
    levels = torch.randint(0, 16, (n, k // 32, 32)).float()
    levels[:, ::2, :] = levels[:, ::2, :].clamp(2, 13)  # half the groups use 12 levels of 16 at most

    def error(weight):
        linear = torch.nn.Linear(k, n, bias=False)
        linear.weight.data.copy_(weight)
        read = PackedInt4Linear(linear, 32)(torch.eye(k)).t()
        return ((read - weight).norm() / weight.norm()).item()

    def fifteen_steps(weight):  # what the group's (max - min) / 15 alone would do
        groups = weight.reshape(n, -1, 32)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        rounded = ((groups - low) / ((high - low) / 15)).round() * ((high - low) / 15) + low
        return ((rounded.reshape(n, k) - weight).norm() / weight.norm()).item()

    grid = (levels * step + low).reshape(n, k)
    assert error(grid) < 0.005 and fifteen_steps(grid) > 0.02
    gaussian = torch.randn(n, k) * 0.02
    assert error(gaussian) < fifteen_steps(gaussian)


def test_perplexity_of_a_model_that_knows_nothing_is_the_vocabulary_size(data):
    from suite.lm import Decoder, perplexity

    model = tiny_gpt2(data)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied to the embeddings: every logit is 0, every token 1/V
    result = perplexity(Decoder(model, "cpu", "dynamic"), data, context=32, max_tokens=200, batch_size=4)
    assert result["perplexity"] == pytest.approx(data.vocab_size, rel=1e-4)
    assert result["windows"] == 6 and result["tokens_scored"] == 6 * 31


def test_greedy_fidelity_counts_equal_tokens_and_first_divergence():
    from suite.lm import greedy_fidelity

    reference = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    tokens = np.array([[1, 2, 9, 4], [5, 6, 7, 8]])
    result = greedy_fidelity(tokens, reference)
    assert result["greedy_agreement"] == pytest.approx(7 / 8)
    assert result["first_divergence_mean"] == pytest.approx((2 + 4) / 2)
    assert result["identical_sequences"] == 1


def test_select_rejects_a_fast_decoder_whose_text_went_wrong():
    from suite.analysis.select import describe, recommend
    from suite.config.scenario import Select
    from suite.records import Fidelity
    from suite.results import LatencyResult, VariantResult

    def variant(name, ppl, greedy, kld, top1, tpot_ms):
        row = LatencyResult(batch_size=1, seq_len=32, metric="tpot", samples_ms=(tpot_ms,), n=1, p50_ms=tpot_ms,
                            p90_ms=tpot_ms, p95_ms=tpot_ms, p99_ms=tpot_ms, mean_ms=tpot_ms, std_ms=0.0, cv=0.0,
                            ci95_p50_ms=(tpot_ms, tpot_ms), robust_cv=0.0, outliers=0)
        return VariantResult(name=name, model="smollm2", backend="eager", agreement=top1, agreement_with="fp32",
                             fidelity=Fidelity(greedy_agreement=greedy, kld_mean=kld, top1_agreement=top1),
                             latency=(row,), generation={"perplexity": {"perplexity": ppl}})

    # int8-dynamic: broken (torch.ao's on SmolLM2); agrees-less: perplexity within 2 % but another model's
    # distributions (errors that cancel in the mean log-likelihood); near-tie: faithful, greedy text drifts.
    variants = (variant("fp32", 18.4, 1.0, 0.0, 1.0, 86.0), variant("int8-dynamic", 51.7, 0.09, 1.2, 0.41, 31.6),
                variant("bf16", 18.5, 0.95, 0.004, 0.985, 62.0), variant("agrees-less", 18.6, 0.5, 0.08, 0.86, 40.0),
                variant("near-tie", 18.45, 0.6, 0.006, 0.975, 50.0))
    select = Select(max_perplexity_increase=0.02, min_greedy_agreement=0.9, metric="tpot", seq_len=32)
    chosen = recommend(select, variants)
    assert chosen["recommended"] == "bf16"
    broke = {b["variant"]: b["over"] for b in chosen["broke"]}
    assert broke == {"int8-dynamic": ["max_perplexity_increase", "min_greedy_agreement"],
                     "agrees-less": ["min_greedy_agreement"], "near-tie": ["min_greedy_agreement"]}
    assert "Recommended: bf16" in describe(chosen)[0]
    only_ppl = recommend(Select(max_perplexity_increase=0.02, metric="tpot"), variants)
    assert only_ppl["recommended"] == "agrees-less"  # no other bound: its perplexity is within 2 %
    # By the field's measures: the divergence and the same top token refuse both broken ones and keep
    # the faithful variant whose free-running text drifts after a near-tie.
    by_kld = recommend(Select(max_kld_mean=0.01, min_top1_agreement=0.97, metric="tpot", seq_len=32), variants)
    assert by_kld["recommended"] == "near-tie"
    assert {b["variant"]: b["over"] for b in by_kld["broke"]} == {
        "int8-dynamic": ["max_kld_mean", "min_top1_agreement"], "agrees-less": ["max_kld_mean", "min_top1_agreement"]}
    text = describe(by_kld)[0]
    assert "a mean KL divergence of at most 0.01" in text and "KL divergence 0.006, top-1 agreement 97.5 %" in text
    unmeasured = variants[:1] + (variant("no-logits", 18.5, 0.9, None, None, 10.0),)
    assert recommend(Select(max_kld_mean=0.01, metric="tpot", seq_len=32), unmeasured)["not_judged"] == [
        {"variant": "no-logits", "reason": "KL divergence not measured"}]
    classifier_budget = recommend(Select(max_accuracy_drop=0.01, metric="tpot"), variants)
    assert classifier_budget["recommended"] is None
    assert "max_perplexity_increase" in classifier_budget["not_judged"][0]["reason"]


DECODER = """
name: dec
model: {name: gpt2, layers: 1, hidden: 32, heads: 2, context: 128, vocab: 400}
dataset: pydoc
measure: {generate: {prompt_lens: [8], new_tokens: 4}}
variants:
  - name: fp32
"""


@pytest.mark.parametrize("change, message", [
    ("  - {name: x, backend: onnxruntime}", ("variants[1].backend: model 'gpt2' is a generative decoder: backend "
                                            "'onnxruntime' does not run it (backends that do: compile, eager, endpoint, "
                                            "llamacpp, openvino_genai, ort_genai)")),
    ("  - {name: x, backend: llamacpp, compress: [bf16]}", "variants[1].compress: backend 'llamacpp' runs the "
                                                          "model's own file, which compression steps do not change"),
    ("  - {name: x, model: mlp, dataset: digits, backend: llamacpp}", "variants[1].backend: model 'mlp' is a model "
                                                                     "judged by accuracy: backend 'llamacpp' does not"),
    ("  - {name: x, backend: {name: llamacpp, context: 4}}", "variants[1].backend.context"),
    ("  - {name: x, compress: [{method: intx_weight_only, bits: 9}]}", "variants[1].compress[0].bits"),
    ("  - {name: x, compress: [int8_static]}", "variants[1].compress[0].method: model 'gpt2' is a generative "
                                              "decoder: method 'int8_static' does not apply to it"),
    ("  - {name: x, compress: [channel]}", "method 'channel' does not apply to it"),
    ("  - {name: x, dataset: digits}", "variants[1].dataset: model 'gpt2' is a generative decoder, but dataset "
                                      "'digits' is for a model judged by accuracy"),
    ("  - {name: x, model: mlp, dataset: pydoc}", "variants[1].dataset: model 'mlp' is a model judged by accuracy, "
                                                 "but dataset 'pydoc' is for a generative decoder"),
    ("  - {name: x, measure: {mode: server}}", "mode server needs a latency bound"),
    ("  - {name: x, measure: {mode: server, latency_bound_ms: 5}}", "variants[1].measure.generate.ttft_bound_ms: "
                                                                   "model 'gpt2' is a generative decoder: mode server needs"),
    ("  - {name: x, measure: {generate: {new_tokens: 1}}}", "variants[1].measure.generate.new_tokens"),
    ("  - {name: x, measure: {generate: {prompt_lens: []}}}", "variants[1].measure.generate.prompt_lens"),
    ("  - {name: x, measure: {generate: {cache: paged}}}", "variants[1].measure.generate.cache"),
    ("  - {name: x, measure: {generate: {texts: ['']}}}", "variants[1].measure.generate.texts[0]"),
    ("  - {name: x, measure: {generate: {new_tokens: 100000}}}", "less than or equal to 4096"),
    ("  - {name: x, model: {name: gpt2, hidden: 30, heads: 4}}", "hidden (30) must be a multiple of heads (4)"),
    ("  - {name: x, model: {name: gpt2, vocab: 10}}", "variants[1].model.vocab"),
    ("  - {name: x, model: {name: hf_causal, path: /nowhere}}", "variants[1].model.path"),
    ("  - {name: x, model: {name: gguf, path: /nowhere.gguf}}", "variants[1].model.path"),
    ("  - {name: x, dataset: {name: text_file, path: /nowhere.txt}}", "variants[1].dataset.path"),
])
def test_bad_decoder_scenarios_are_one_line_errors(write_scenario, capsys, change, message):
    path = write_scenario(DECODER + change + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_llamacpp_says_why_it_cannot_run_a_model(write_scenario, run_quick):
    """Without llama-cpp-python the variant is skipped with the reason; with it, a model that has
    no GGUF file of its own fails with the reason (tests/test_llamacpp.py runs the real file)."""
    import importlib.util

    path = write_scenario("""
        name: absent
        model: {name: gpt2_random, layers: 1, hidden: 32, heads: 2, context: 64, vocab: 300}
        measure: {batch_sizes: [1], generate: {prompt_lens: [8], new_tokens: 4}}
        variants:
          - {name: native, backend: llamacpp}
        """)
    status, _, _, results = run_quick(path, "--in-process")
    [native] = results["variants"]
    if importlib.util.find_spec("llama_cpp") is None:
        assert native["status"] == "skipped" and "llama-cpp-python is not installed" in native["error"]
    else:
        assert status == 2 and native["status"] == "failed" and "runs a model's own GGUF file" in native["error"]


@pytest.mark.parametrize("block, message", [
    ("select: {metric: tpot}", "select needs a budget"),
    ("select: {max_kld_mean: -0.1, metric: tpot}", "select.max_kld_mean"),
    ("select: {max_kld_mean: .nan, metric: tpot}", "select.max_kld_mean"),
    ("select: {max_kld_mean: 0.01, min_top1_agreement: 1.5, metric: tpot}", "select.min_top1_agreement"),
    ("select: {max_kld_mean: '0.01', metric: tpot}", "select.max_kld_mean"),
    ("fidelity: {max_kld_mean: -1}", "fidelity.max_kld_mean"),
    ("fidelity: {min_top1_agreement: 2}", "fidelity.min_top1_agreement"),
    ("fidelity: {min_greedy_agreement: -0.5}", "fidelity.min_greedy_agreement"),
    ("fidelity: {max_kld: 0.1}", "fidelity: unknown key 'max_kld'"),
])
def test_bad_decoder_bounds_are_one_line_errors(write_scenario, capsys, block, message):
    path = write_scenario(DECODER + block + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_a_prompt_longer_than_the_model_is_refused_when_the_scenario_is_read(write_scenario, run_quick):
    path = write_scenario(DECODER.replace("prompt_lens: [8]", "prompt_lens: [200]"))
    status, out, err, results = run_quick(path, "--in-process")
    assert status == 2 and results is None  # refused once, when the scenario is read: nothing ran
    assert err.strip().endswith("measure.generate: a prompt of 200 tokens and 4 new ones (prompt_lens, new_tokens) "
                                "need 204 positions, but model 'gpt2' has 128"), err


def test_your_own_causal_lm_folder_and_a_damaged_gguf(tmp_path, write_scenario, run_quick, data):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "my-lm"  # a plain transformers GPT-2, as a user's save_pretrained writes it
    GPT2LMHeadModel(GPT2Config(vocab_size=data.vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                               eos_token_id=data.tokenizer.eos_token_id)).save_pretrained(folder)
    data.tokenizer.save_pretrained(folder)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    path = write_scenario(f"""
        name: own
        dataset: pydoc
        measure: {{generate: {{prompt_lens: [8], new_tokens: 4}}, batch_sizes: [1]}}
        variants:
          - {{name: mine, model: {{name: hf_causal, path: {folder}}}}}
          - {{name: mine-bf16, model: {{name: hf_causal, path: {folder}}}, compress: [bf16]}}
          - {{name: broken, model: {{name: gguf, path: {bad}}}}}
        """)
    status, out, _, results = run_quick(path, "--in-process")
    mine, bf16, broken = results["variants"]
    assert broken["status"] == "failed" and broken["error_type"] == "SuiteError", broken["error"]
    assert status == 2  # bad input: that one variant failed with the reason, the others ran
    assert mine["status"] == "ok" and mine["weights"]["source"] == "provided"
    assert mine["generation"]["perplexity"]["perplexity"] > 1
    assert bf16["status"] == "ok" and bf16["agreement_with"] == "mine" and 0 <= bf16["agreement"] <= 1
    assert broken["status"] == "failed" and "bad.gguf" in broken["error"] and "\n" not in broken["error"]


def test_kl_divergence_from_the_reference_crosses_processes_and_select_refuses_a_broken_decoder(
        tmp_path, write_scenario, run_quick, data):
    """Each variant in its own process: the reference saves its summary once (positions x KLD_TOP,
    not the vocabulary), the others read it from the run folder; a decoder whose weights were
    ruined is flagged by its divergence and refused by select, while bf16 stays within."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "lm"
    torch.manual_seed(0)  # weights wide enough for sharp next-token distributions, as a trained model's
    GPT2LMHeadModel(GPT2Config(vocab_size=data.vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                               initializer_range=0.3, eos_token_id=data.tokenizer.eos_token_id)).save_pretrained(folder)
    data.tokenizer.save_pretrained(folder)
    path = write_scenario(f"""
        name: kld
        dataset: pydoc
        model: {{name: hf_causal, path: {folder}}}
        baseline: fp32
        measure: {{generate: {{prompt_lens: [8], new_tokens: 4, perplexity_context: 32, perplexity_tokens: 256}},
                   batch_sizes: [1]}}
        fidelity: {{max_kld_mean: 0.01, min_top1_agreement: 0.9}}
        select: {{max_kld_mean: 0.01, min_top1_agreement: 0.9, metric: tpot, seq_len: 8}}
        variants:
          - {{name: bf16, compress: [bf16]}}
          - {{name: fp32}}
          - {{name: ruined, compress: [{{method: magnitude, sparsity: 0.9}}]}}
        """)
    status, out, _, results = run_quick(path)
    assert status == 0, out
    by_name = {v["name"]: v for v in results["variants"]}
    fp32, bf16, ruined = by_name["fp32"]["fidelity"], by_name["bf16"]["fidelity"], by_name["ruined"]["fidelity"]
    assert fp32["kld_mean"] == 0 and fp32["top1_agreement"] == 1 and fp32["kld_positions"] == 8 * 31
    assert 0 < bf16["kld_mean"] < 0.01 and bf16["top1_agreement"] > 0.9 and bf16["kld_mean_se"] > 0
    assert ruined["kld_mean"] > 0.01 and ruined["kld_p99"] >= ruined["kld_median"]
    assert by_name["ruined"]["agreement"] == ruined["top1_agreement"] < 1
    assert any("mean KL divergence from 'fp32'" in w for w in by_name["ruined"]["warnings"])
    assert not any("KL divergence" in w for w in by_name["bf16"]["warnings"])
    selection = results["selection"]
    assert {b["variant"]: "max_kld_mean" in b["over"] for b in selection["broke"]} == {"ruined": True}
    assert selection["recommended"] in ("bf16", "fp32")
    run = next((tmp_path / "reports").glob("*/*/results.json")).parent
    saved = list((run / "outputs").glob("*.logits.npz"))
    assert [p.name.startswith("fp32") for p in saved] == [True]  # the reference's only
    with np.load(saved[0]) as summary:
        assert summary["top_ids"].shape == (8 * 31, min(1024, data.vocab_size))


def test_server_mode_for_decoders_bisects_the_request_rate(write_scenario, run_quick):
    path = write_scenario(DECODER.replace("measure: {generate: {prompt_lens: [8], new_tokens: 4}}",
                                          "measure: {mode: server, rate_steps: 3, generate: {prompt_lens: [8], "
                                          "new_tokens: 4, ttft_bound_ms: 60000, tpot_bound_ms: 1000}}"))
    status, _, _, results = run_quick(path, "--in-process")
    assert status == 0
    load = results["variants"][0]["load"]
    assert load["mode"] == "server" and len(load["trials"]) == 3
    # --quick: 4 requests per trial, or more so that their arrivals span 1 s (server_min_s)
    assert all(t["requests"] == max(4, math.ceil(t["rate_qps"])) == t["ttft"]["n"] and t["tpot"]["n"] == 3 * t["requests"]
               for t in load["trials"])
    # A minute's TTFT bound is met below capacity even where busy cores slow each request several
    # times over the 1 s of arrivals (queueing then builds up to seconds: each trial lasts server_min_s).
    assert load["max_rate_qps"] is not None
    rates = [t["rate_qps"] for t in load["trials"]]
    assert rates[1] > rates[0] and rates[2] > rates[1]  # each trial met the bound: the search went up


def test_gguf_weights_are_cached_after_the_first_load(tmp_path, monkeypatch):
    """The de-quantized float weights of a GGUF file are made once and reused (the cache folder
    is keyed by the file's path, size and time)."""
    from models import causal_lm

    calls = []
    source = tmp_path / "model.gguf"
    source.write_bytes(b"x")

    def fake_dequantized(file):
        calls.append(file)
        return "model", "tokenizer"

    from suite.build import weights

    monkeypatch.setattr(causal_lm, "dequantized", fake_dequantized)
    monkeypatch.setattr(causal_lm, "write_float_folder", lambda model, tokenizer, folder: (folder / "w").write_text("w"))
    weights.use_cache_root(tmp_path / "cache")
    try:
        first = causal_lm.gguf_float_folder(source)
        second = causal_lm.gguf_float_folder(source)
    finally:
        weights.use_cache_root(None)
    assert first == second and (first / "done").exists() and len(calls) == 1
    source.write_bytes(b"changed")
    weights.use_cache_root(tmp_path / "cache")
    try:
        assert causal_lm.gguf_float_folder(source) != first and len(calls) == 2
    finally:
        weights.use_cache_root(None)


def test_machine_limits_are_positive_and_measured_once_per_run(tmp_path):
    from suite.measure import machine
    from suite.run.run_folder import RunFolder

    folder = RunFolder(tmp_path)
    calls = []

    def measure():
        calls.append(1)
        return machine.limits()

    first = folder.limits(measure)
    assert first["read_bandwidth_gbps"] > 0.1 and first["matmul_gflops"] > 0.1
    assert folder.limits(measure) == first and len(calls) == 1
    (tmp_path / "limits.json").write_text('{"read_bandwidth_gbps": -1}')  # damaged: measured again
    folder.limits(measure)
    assert len(calls) == 2 and math.isfinite(folder.limits(measure)["matmul_gflops"])


def test_prefill_flops_count_each_multiplied_weight_once(data):
    from suite.tasks.generate import matmul_weights

    model = tiny_gpt2(data)  # lm_head tied to the token embedding: looked up, so not counted
    blocks = sum(p.numel() for p in model.transformer.h.parameters()) + sum(
        p.numel() for p in model.transformer.ln_f.parameters())
    assert matmul_weights(model) == blocks


def test_weights_read_per_token_leave_out_tables_that_are_only_looked_up(data):
    from suite.tasks.generate import weights_read_bytes

    model = tiny_gpt2(data)
    tokens, positions = model.transformer.wte.weight.nbytes, model.transformer.wpe.weight.nbytes
    # The token table is the tied output head (read whole each step); the position table is looked up.
    assert weights_read_bytes(model, 10**7) == 10**7 - positions
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    # The head now has its own int8 copy: the float token table is only looked up too.
    assert weights_read_bytes(quantized, 10**7) == 10**7 - positions - tokens


def test_a_figure_above_the_measured_limit_says_the_probe_is_a_lower_bound():
    from types import SimpleNamespace

    from suite.tasks.generate import above_the_limit, roofline

    limits = {"read_bandwidth_gbps": 10.0, "matmul_gflops": 100.0, "how": "sum over 512 MiB"}
    rows = [SimpleNamespace(batch_size=1, seq_len=8, p50_ms=ms, metric="tpot") for ms in (1.0, 0.5)]
    lines = roofline(rows, 7_500_000, 1000, limits)  # 7.5 and 15 GB/s against 10
    assert [round(line["share"], 2) for line in lines] == [0.75, 1.5]
    [note] = above_the_limit(lines, limits)
    assert note.startswith("tpot b=1 p=8: 150% of the measured read bandwidth") and "lower bound" in note
