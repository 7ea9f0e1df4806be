"""Issue 33's targets for compressed decoders, read from one `suite run` of scenarios/smollm2.yaml
(every ratio from one run: the same machine, the same minutes). A benchmark, not a test: it prints.

1. A compressed-weight variant that decodes at batch 1 at least 2x faster than fp32 eager and
   1.3x faster than the best fp32 backend, at a mean KL divergence from fp32 of at most 0.01 and
   the same top token at 97 % of positions at least.
2. An int4 variant at perplexity at most 5 % above fp32's and, where the llamacpp extra is built,
   within 1.25x of llama.cpp's time per output token.

For each compressed-weight variant it prints its time per output token (b=1, the first prompt
length) with its 95 % interval, its speed-up over fp32 eager and over the best fp32 backend (by
the one rule, suite.measure.processes.compare_rows: the ratio's interval), its KL divergence,
top-1 agreement and perplexity change, and which target it meets. Where no variant meets a
target, it prints `suite explain` for the nearest one against the figure it misses.

    python -m suite run scenarios/smollm2.yaml
    python benchmarks/decoder_targets.py reports/smollm2/<run>/results.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEIGHT_METHODS = {"int8_weight_only": "int8", "int8_dynamic": "int8", "int8_dynamic_activation": "int8",
                  "int4_cpu": "int4", "int4_weight_only": "int4"}


def weight_bits(v) -> str | None:
    """'int8' / 'int4' where the variant's weights are integers (a compression step or the
    backend's own), else None."""
    info = v.backend_info or {}
    for step in v.compress:
        method = step.get("method") if isinstance(step, dict) else step
        if method == "intx_weight_only":
            return f"int{(step.get('bits') if isinstance(step, dict) else None) or 4}"
        if method in WEIGHT_METHODS:
            return WEIGHT_METHODS[method]
    for key in ("precision", "weights"):
        value = str(info.get(key) or "")
        if value.startswith(("int8", "int4")):
            return value[:4]
    return "int4" if v.backend == "llamacpp" else None


def is_fp32(v) -> bool:
    return not v.compress and weight_bits(v) is None and v.backend != "llamacpp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--baseline", default="fp32", help="the fp32 eager variant (default: fp32)")
    args = parser.parse_args()

    from suite.measure.processes import compare_rows
    from suite.report.tables import decoder_figure
    from suite.results import load_json

    run = load_json(args.results)
    ok = [v for v in run.variants if v.status == "ok" and v.generation]
    by_name = {v.name: v for v in ok}
    prompt = ok[0].generation["settings"]["prompt_lens"][0]

    def tpot(v):
        return decoder_figure(v, "tpot", 1, prompt)

    eager = by_name[args.baseline]
    fp32 = [v for v in ok if is_fp32(v) and tpot(v)]
    best = min(fp32, key=lambda v: tpot(v).p50_ms)
    llama = next((v for v in ok if v.backend == "llamacpp" and tpot(v)), None)
    print(f"time per output token at b=1, prompt {prompt}: fp32 eager ({eager.name}) {tpot(eager).p50_ms:.2f} ms; "
          f"best fp32 backend {best.name} {tpot(best).p50_ms:.2f} ms"
          + (f"; llama.cpp ({llama.name}) {tpot(llama).p50_ms:.2f} ms" if llama else "; llama.cpp: not run"))
    head = f"{'variant':34} {'bits':4} {'TPOT ms':>16} {'vs eager':>22} {'vs best fp32':>22} {'KLD':>8} {'top-1':>6} " \
           f"{'ppl':>7}  targets"
    print(head)
    met: dict[int, list[str]] = {1: [], 2: []}
    missed: dict[int, list[tuple[int, float, str, list[str]]]] = {1: [], 2: []}
    for v in ok:
        bits = weight_bits(v)
        row = tpot(v)
        if bits is None or row is None or v.backend == "llamacpp":
            continue
        f = v.fidelity
        vs_eager, vs_best = compare_rows(row, tpot(eager)), compare_rows(row, tpot(best))
        ppl = f.perplexity_increase if f else None
        kld, top1 = (f.kld_mean, f.top1_agreement) if f else (None, None)
        misses = {1: [why for bad, why in (
            (kld is None or kld > 0.01, f"KLD {kld:.4f} > 0.01" if kld is not None else "no KLD"),
            (top1 is None or top1 < 0.97, f"top-1 {top1:.1%} < 97 %" if top1 is not None else "no top-1"),
            (vs_eager.ci_low < 2.0, f"vs eager {vs_eager.ci_low:.2f}x < 2x (interval's low end)"),
            (vs_best.ci_low < 1.3, f"vs {best.name} {vs_best.ci_low:.2f}x < 1.3x (interval's low end)")) if bad],
            2: [why for bad, why in (
                (bits != "int4", "not int4"),
                (ppl is None or ppl > 0.05, f"perplexity {ppl:+.1%} > +5 %" if ppl is not None else "no perplexity"),
                (llama is not None and row.p50_ms > 1.25 * tpot(llama).p50_ms,
                 f"{row.p50_ms / tpot(llama).p50_ms:.2f}x llama.cpp's TPOT > 1.25x" if llama else "")) if bad]}
        for target in (1, 2):
            if not misses[target]:
                met[target].append(v.name)
            elif target == 1 or bits == "int4":
                missed[target].append((len(misses[target]), kld if target == 1 else ppl, v.name, misses[target]))

        def ratio(c):
            return f"{c.ratio:.2f}x ({c.ci_low:.2f}-{c.ci_high:.2f})"

        print(f"{v.name:34} {bits:4} {row.p50_ms:7.2f} ({row.ci95_p50_ms[0]:.2f}-{row.ci95_p50_ms[1]:.2f}) "
              f"{ratio(vs_eager):>22} {ratio(vs_best):>22} {kld if kld is not None else float('nan'):8.4f} "
              f"{top1 if top1 is not None else float('nan'):6.1%} {ppl if ppl is not None else float('nan'):+7.1%}  "
              + "; ".join(f"target {t}: " + ("met" if not misses[t] else ", ".join(misses[t]))
                          for t in (1, 2) if t == 1 or bits == "int4"))
    for target, words in ((1, ">= 2x eager and >= 1.3x the best fp32 backend at KLD <= 0.01, top-1 >= 97 %"),
                          (2, "int4 at perplexity <= +5 %" + (" and within 1.25x of llama.cpp" if llama else ""))):
        print(f"target {target} ({words}): " + (f"met by {', '.join(met[target])}" if met[target] else "not met"))
        if not met[target] and missed[target]:
            _, _, name, why = min(missed[target], key=lambda m: (m[0], m[1] if m[1] is not None else 9))
            print(f"  nearest: {name} (misses: {', '.join(why)}); suite explain {name} --against {args.baseline}:")
            explained = subprocess.run([sys.executable, "-m", "suite", "explain", str(args.results), name, "--against",
                                        args.baseline], cwd=ROOT, capture_output=True, text=True)
            print("    " + (explained.stdout or explained.stderr).strip().replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
