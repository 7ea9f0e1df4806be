"""Every file in scenarios/ runs in quick mode, and its results.json is checked field by field."""

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from suite.config.scenario import load
from suite.results import SCHEMA_VERSION
from suite.run.run_plan import QUICK_PROMPT_LENS, QUICK_SEQ_LENS, QUICK_TEXTS
from tests.conftest import ROOT

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
# Why a variant moved by --backend may be skipped: it cannot run there, or repeats another.
MOVED_AWAY = re.compile(r"cannot run .*, which compress step|it is the same as variant")
# Variants each scenario runs here when not all, to keep CI's whole test run under 15 minutes on
# two cores with a cold inductor cache (durations of 2026-12-03, pytest --durations). SmolLM2's
# torch.compile variants take minutes to compile a 30-layer model; its bf16 (63 s) and int8
# weight-only (81 s) run on GPT-2 here and in tests/test_decoders.py. GPT-2's bf16 + int8
# weight-only compiled took 219 s (inductor compiles for each shape: the compile path for decoders
# runs here on fp32-compiled). MiniLM's PT2E int8 compiled took 122 s (compiles for each
# shape; PT2E int8 compiled runs on the CNN and ResNet scenarios).
# OpenVINO GenAI's NNCF int8 runs in gpt2's quick run and on a Llama in tests/test_openvino_genai.py
# (SmolLM2's conversion alone took 33 s of the test run's 15 minutes).
QUICK_ONLY = {"smollm2": ("fp32", "int8-dynamic", "ort-int4"),
              "gpt2": ("fp32", "fp32-compiled", "bf16", "int8-dynamic", "magnitude50", "ov-int8", "served-fp32"),
              "bert": ("minilm-fp32", "minilm-int8-dynamic", "minilm-onnxruntime", "minilm-onnxruntime-int8",
                       "minilm-openvino", "small-bert-fp32"),
              "serving": ("fp32", "served-fp32")}  # served-bf16: the same path, another server start
ENVIRONMENT_KEYS = {"python", "torch", "platform", "cpu", "cores", "gpu", "packages", "git_commit"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_runs_quick_and_results_hold(path, run_quick, request):
    scenario = load(path)
    backend = request.config.getoption("--suite-backend")  # tox: each backend env runs every scenario there
    # In one process: a fresh process per variant starts every kernel cold, and on CI's two cores
    # that took the test suite from 7.0 to 10.7 minutes. Isolation has its own tests
    # (test_isolation.py), and the CLI, runner and weights tests run variants in their own processes.
    only = [arg for name in QUICK_ONLY.get(path.stem, ()) for arg in ("--only", name)]
    status, out, _, results = run_quick(path, "--in-process", *only, *(["--backend", backend] if backend else []))
    assert status == 0, out
    assert "report: " in out.splitlines()[-1]
    assert results["schema_version"] == SCHEMA_VERSION and results["quick"] is True
    assert datetime.fromisoformat(results["created"]).utcoffset().total_seconds() == 0
    assert results["scenario"] == scenario.model_dump(mode="json")
    assert ENVIRONMENT_KEYS <= set(results["environment"])
    declared_variants = [v for v in scenario.variants if v.name in QUICK_ONLY.get(path.stem, (v.name,))]
    assert [v["name"] for v in results["variants"]] == [v.name for v in declared_variants]
    for variant, declared in zip(results["variants"], declared_variants, strict=False):
        if backend and variant["status"] == "skipped":
            assert MOVED_AWAY.search(variant["error"]), variant["error"]
            continue
        measure = scenario.measure_of(declared)
        if variant["generation"] is not None:
            check_decoder(variant, measure)
            continue
        shapes = [(b, s) for s in (measure.seq_lens or (None,))[:QUICK_SEQ_LENS] for b in measure.batch_sizes]
        check_variant(variant, shapes)
    if path.stem == "smollm2":  # torch.ao's dynamic int8 breaks this model: its divergence says so, select refuses it
        broke = {b["variant"]: b["over"] for b in results["selection"]["broke"]}
        assert "max_kld_mean" in broke["int8-dynamic"] and "min_top1_agreement" in broke["int8-dynamic"]
        by_name = {v["name"]: v for v in results["variants"]}
        assert by_name["int8-dynamic"]["fidelity"]["kld_mean"] > 0.1
        assert any("mean KL divergence from 'fp32'" in w for w in by_name["int8-dynamic"]["warnings"])
    if path.stem in ("serving", "gpt2"):  # SmolLM2 and the GPT-2 trained here, each behind transformers serve
        by_name = {v["name"]: v for v in results["variants"]}
        check_served(by_name["served-fp32"], by_name["fp32"], out)
    if path.stem == "serving":
        check_served_search(by_name["served-fp32"])


def check_served(served: dict, reference: dict, out: str) -> None:
    """fp32 through a real transformers serve, started for the variant and stopped after it: the
    in-process fp32's answers, every token asked at each load point, load rows that compare judges."""
    import os

    # The same float weights through the server: the same greedy tokens and texts as in this process.
    assert served["fidelity"]["greedy_agreement"] == 1.0, served["fidelity"]
    assert [t["text"] for t in served["generation"]["texts"]] == [t["text"] for t in reference["generation"]["texts"]]
    sweep, new_tokens = served["generation"]["endpoint"], served["generation"]["settings"]["new_tokens"]
    loads = [p.get("concurrency", p.get("rate")) for p in sweep["points"]]
    assert loads[:2] == [1, 4] and len(loads) == 3 and isinstance(loads[2], float)
    for point in sweep["points"]:  # the server's own count of what it wrote: every token asked (min_new_tokens)
        assert point["output_tokens"] == point["requests"] * new_tokens and point["tpot"]["n"] == point["requests"]
        assert point["short"] == 0
    # Each load point's requests as latency rows of their own, which compare (and so gate) judges.
    load_rows = [r for r in served["latency"] if " at " in r["metric"]]
    assert [r["metric"] for r in load_rows] == [f"{m} at {load}" for load in ("1 user", "4 users", f"{loads[2]:g}/s")
                                                for m in ("ttft", "tpot")]
    assert all(len(r["samples_ms"]) == sweep["requests_per_point"] for r in load_rows)
    from suite.analysis.compare import compare_runs
    from suite.results import load_json

    run = load_json(Path(out.splitlines()[-1].split("report: ")[1]).parent / "results.json")
    judged = {row.shape: row for row in compare_runs(run, run) if row.variant == "served-fp32"}
    assert judged["ttft at 4 users b=1 p=32"].comparison.verdict() == "no significant change"
    # The client's own floor, against a trivial endpoint: far below a request to the model.
    client = sweep["client"]
    assert client["failed"] == 0 and 0 < client["ttft"]["p50_ms"] < served["latency"][0]["p50_ms"]
    page = open(out.splitlines()[-1].split("report: ")[1]).read()
    assert "Behind a server, under load" in page and 'id="endpoint-load"' in page and "The client's own cost" in page
    pid = served["backend_info"]["server_pid"]  # stopped after the variant
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def check_served_search(served: dict) -> None:
    """serving.yaml's bounds and cost: the rate search and its cost per million tokens."""
    sweep = served["generation"]["endpoint"]
    # The highest Poisson rate meeting MLPerf's server bounds (bounds: server), in --quick's 3 trials, and its cost.
    # Whether a trial of a few requests meets them depends on how busy the cores are (in one CI run beside
    # the other test worker, none of the three met them): each trial is judged by its own figures, and the
    # cost follows the best one, or is None. tests/test_endpoint.py judges the search on simulated servers.
    from suite.measure.stats import p99_claim

    search = sweep["search"]
    assert (search["ttft_bound_ms"], search["tpot_bound_ms"], len(search["trials"])) == (2000.0, 200.0, 3), search
    for t in search["trials"]:
        assert t["requests"] >= 4 and t["failed"] == 0, t["reasons"]
        assert t["met"] == (p99_claim(t["ttft"]) <= 2000.0 and p99_claim(t["tpot"]) <= 200.0), t
    best = max((t for t in search["trials"] if t["met"]), key=lambda t: t["rate"], default=None)
    assert search["max_rate_rps"] == (best and best["rate"])
    expected = best and pytest.approx(sweep["cost_per_hour"] / 3600 / best["output_tokens_per_s"] * 1e6)
    assert sweep["cost_per_million_tokens"] == expected


def check_decoder(v: dict, measure) -> None:
    """A generative decoder's result: perplexity, greedy fidelity, texts, and a ttft / tpot /
    request row at every prompt length and batch size, tokens/s from the tpot medians."""
    assert v["status"] == "ok" and v["error"] is None, v["error"]
    g = v["generation"]
    assert v["accuracy"] is None and g["perplexity"]["perplexity"] > 1.0
    assert g["perplexity"]["tokens_scored"] > 0
    f = v["fidelity"]
    assert 0.0 <= v["agreement"] <= 1.0 and v["agreement"] == f["top1_agreement"]  # the same top token
    assert 0.0 <= f["greedy_agreement"] <= 1.0 and f["kld_positions"] == g["perplexity"]["tokens_scored"]
    assert 0.0 <= f["kld_median"] <= f["kld_p90"] <= f["kld_p99"] <= f["kld_max"] and f["kld_mean"] <= f["kld_max"]
    if v["agreement_with"] == v["name"]:  # the reference against itself
        assert f["kld_max"] == 0.0 and f["top1_agreement"] == 1.0
    texts = measure.generate.texts[:QUICK_TEXTS]  # --quick writes the first (another length compiles again)
    assert [t["prompt"] for t in g["texts"]] == list(texts) and all(isinstance(t["text"], str) for t in g["texts"])
    served = v["backend"] == "endpoint"  # one request at a time: its batches are the load's users
    expected = [(m, b, p) for p in measure.generate.prompt_lens[:QUICK_PROMPT_LENS]
                for b in measure.batch_sizes if b == 1 or not served for m in ("ttft", "tpot", "request")]
    timed = [r for r in v["latency"] if r["metric"] in ("ttft", "tpot", "request")]  # a server adds its load's
    assert [(r["metric"], r["batch_size"], r["seq_len"]) for r in timed] == expected
    for row, rate in zip(timed, v["throughput"], strict=False):
        check_latency(row)
        tokens = {"ttft": row["batch_size"] * row["seq_len"], "tpot": row["batch_size"],
                  "request": row["batch_size"] * g["settings"]["new_tokens"]}[row["metric"]]
        assert rate["samples_per_s"] == pytest.approx(tokens / (row["p50_ms"] / 1e3))
    # a server's KV cache is its own: not seen from here
    assert all((c["bytes"] is None) if served else c["bytes"] > 0 for c in g["kv_cache"])
    if served:  # a server under load: every point's requests answered
        points = g["endpoint"]["points"]
        assert points and all(p["failed"] == 0 and p["ttft"]["p50_ms"] > 0 for p in points), points
    assert g["limits"]["read_bandwidth_gbps"] > 0 and g["limits"]["matmul_gflops"] > 0
    assert all(0 < r["share"] for r in g["roofline"])


def check_variant(v: dict, shapes: list[tuple[int, int | None]]) -> None:
    assert v["status"] == "ok" and v["error"] is None, v["error"]
    if v["weights"]["source"] == "untrained":
        assert v["accuracy"] is None and v["accuracy_reason"] == "untrained"
    else:
        assert 0.0 <= v["accuracy"] <= 1.0 and v["accuracy_reason"] is None
    assert 0.0 <= v["agreement"] <= 1.0 and v["agreement_with"]
    assert v["size_bytes"] > 0 and v["params"] > 0 and v["peak_rss_bytes"] > 2**20
    assert (v["energy"] is None) == bool(v["energy_reason"])  # a figure where a counter can be read, else why not
    assert isinstance(v["warnings"], list)
    assert [(row["batch_size"], row["seq_len"]) for row in v["latency"]] == shapes
    for row, rate in zip(v["latency"], v["throughput"], strict=False):
        check_latency(row)
        assert (rate["batch_size"], rate["seq_len"]) == (row["batch_size"], row["seq_len"])
        assert rate["samples_per_s"] == pytest.approx(row["batch_size"] / (row["p50_ms"] / 1e3))


def check_latency(row: dict) -> None:
    samples = np.array(row["samples_ms"])
    assert row["n"] == len(samples) > 0 and (samples > 0).all()
    assert row["p50_ms"] == pytest.approx(np.median(samples))
    assert row["p50_ms"] <= row["p90_ms"] <= row["p95_ms"] <= row["p99_ms"] <= samples.max()
    assert row["mean_ms"] == pytest.approx(samples.mean())
    assert row["cv"] == pytest.approx(row["std_ms"] / row["mean_ms"])
    low, high = row["ci95_p50_ms"]
    assert low <= row["p50_ms"] <= high
