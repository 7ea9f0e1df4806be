"""Why decoding reaches the share of the read bandwidth it does (issue 16's targets).

Decoding at batch 1 reads every weight once per token. This prints, on this machine and with
torch's thread count:

1. the read bandwidth (a sum over 512 MiB, as `suite run` measures it for limits.json);
2. the matrix-vector products alone of one decode step of the model (every Linear of every layer
   and the output head, one token, random weights of the model's shapes), eager and compiled, in
   fp32, bf16, and int8 weight-only (torchao) with bf16 or fp32 activations: the time a decode step
   cannot go below with those kernels, and the bandwidth those kernels reach;
3. where the time of one real eager decode step goes (torch.profiler, top operators), and, for a
   results.json given with --results, each variant's measured TPOT beside the kernels' floor.

    python benchmarks/decode_ceiling.py --results reports/smollm2/<run>/results.json

Run it on a quiet machine: nothing else may run while it times.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path


def shapes(config) -> list[tuple[int, int]]:
    """(in, out) of every Linear one decode step runs, output head included."""
    hidden, inter = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = (config.num_key_value_heads or heads) * head_dim
    layer = [(hidden, heads * head_dim), (hidden, kv), (hidden, kv), (heads * head_dim, hidden),
             (hidden, inter), (hidden, inter), (inter, hidden)]
    return layer * config.num_hidden_layers + [(hidden, config.vocab_size)]


def best_ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def linear_chain(dims: list[tuple[int, int]], dtype, int8: bool):
    """The step's Linears, each applied to an input of its width (they do not chain as in a real
    step, but the work and the bytes read are the same). Every output is returned: a compiled
    step that dropped them would have nothing to compute."""
    import torch

    layers = torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False) for i, o in dims).eval().to(dtype)
    if int8:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(layers, Int8WeightOnlyConfig())
    inputs = {i: torch.randn(1, i, dtype=dtype) for i, _ in dims}

    def step(modules=layers):
        return [layer(inputs[layer.in_features]) for layer in modules]

    return layers, step


def kernel_floor(config, read_gbps: float) -> list[dict]:
    import torch

    dims = shapes(config)
    params = sum(i * o for i, o in dims)
    rows = []
    for label, dtype, int8, bytes_per in (("fp32", torch.float32, False, 4), ("bf16", torch.bfloat16, False, 2),
                                          ("int8 weights, bf16 activations", torch.bfloat16, True, 1),
                                          ("int8 weights, fp32 activations", torch.float32, True, 1)):
        layers, step = linear_chain(dims, dtype, int8)
        with torch.inference_mode():
            eager = best_ms(step)
            compiled_layers = torch.compile(lambda step=step, layers=layers: step(layers))
            compiled_layers()
            compiled = best_ms(compiled_layers)
        for how, ms in (("eager", eager), ("compiled", compiled)):
            gbps = params * bytes_per / (ms / 1e3) / 1e9
            rows.append({"weights": label, "how": how, "ms": round(ms, 2), "gbps": round(gbps, 1),
                         "share": round(gbps / read_gbps, 3)})
        del layers
    return rows


def profile_step(model, top: int = 8) -> list[tuple[str, float]]:
    """Self CPU time of the top operators over 8 eager decode steps after a 32-token prompt."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from suite.lm import Decoder

    decoder = Decoder(model, "cpu", "dynamic")
    prompt = torch.randint(0, model.config.vocab_size, (1, 32))
    decoder.start(1, 64)
    token = decoder.prefill(prompt)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(8):
            token = decoder.step(token)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [(e.key, e.self_cpu_time_total / total) for e in events[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="a smollm2 run's results.json: its TPOTs beside the floor")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from models.causal_lm import from_folder, gguf_float_folder, smollm2_file
    from suite.measure.machine import read_bandwidth_gbps

    model = from_folder(gguf_float_folder(smollm2_file())).eval()
    read = read_bandwidth_gbps()
    print(f"threads {torch.get_num_threads()}; read bandwidth {read:.1f} GB/s (sum over 512 MiB, best of 5)")
    dims = shapes(model.config)
    print(f"one decode step multiplies {sum(i * o for i, o in dims) / 1e6:.1f} M weights ({len(dims)} Linears)")
    print("\nthe step's matrix-vector products alone (random weights of SmolLM2's shapes, median of 20):")
    for row in kernel_floor(model.config, read):
        print(f"  {row['weights']:32s} {row['how']:9s} {row['ms']:7.2f} ms  {row['gbps']:5.1f} GB/s  "
              f"{row['share']:.0%} of the read bandwidth")
    print("\nwhere one eager fp32 decode step's CPU time goes (self time, 8 steps):")
    for name, share in profile_step(model):
        print(f"  {share:6.1%}  {name}")
    if args.results:
        data = json.loads(args.results.read_text())
        print(f"\nmeasured TPOT at batch 1 (p50), from {args.results}:")
        for v in data["variants"]:
            rows = [r for r in v.get("latency", ()) if r.get("metric") == "tpot" and r["batch_size"] == 1]
            if rows:
                print(f"  {v['name']:34s} {rows[0]['p50_ms']:7.2f} ms  (p={rows[0]['seq_len']})")


if __name__ == "__main__":
    main()
