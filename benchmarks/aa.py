"""A/A: identical variants measured as `suite run` measures them. Does suite call two copies of
the same thing different? A benchmark, not a test: it prints a table.

One scenario per `--processes` value: `--copies` identical copies of ResNet-20 (trained on the
digits, the training cached) on each backend of `--backends`, run by `python -m suite run` with
its default launcher (each variant's processes its own, interleaved in rounds). For each backend
and shape it prints the spread of the copies' medians, how many pairs of copies have disjoint 95 %
intervals of the median, and how many the one rule (suite.measure.processes.compare_rows) calls
different. Goal on a quiet machine: at most 5 % of pairs disjoint.

    python benchmarks/aa.py [--copies 4] [--processes 1 5] [--backends eager onnxruntime]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

from cross_check import positive

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIO = """
name: aa-{processes}
measure: {{batch_sizes: [{batch_sizes}], processes: {processes}}}
variants:
{variants}
"""
VARIANT = """  - name: {backend}-{copy}
    model: {{name: resnet, depth: 20}}
    dataset: digits
    backend: {backend}
"""


def run(processes: int, copies: int, backends: list[str], batch_sizes: list[int], out: Path) -> Path:
    """The scenario run by the suite's own command; its results.json."""
    variants = "".join(VARIANT.format(backend=b, copy=c) for c in range(1, copies + 1) for b in backends)
    path = out / f"aa-{processes}.yaml"
    path.write_text(SCENARIO.format(processes=processes, batch_sizes=", ".join(map(str, batch_sizes)),
                                    variants=variants))
    subprocess.run([sys.executable, "-m", "suite", "run", str(path), "--out", str(out)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return max((out / f"aa-{processes}").glob("*/results.json"), key=lambda p: p.stat().st_mtime)


def table(results: Path, backends: list[str]) -> tuple[list[list[str]], int, int]:
    """Rows (backend, shape, processes, medians' spread, disjoint pairs, pairs called different)
    and the totals of disjoint pairs and pairs."""
    from suite.measure.processes import compare_rows
    from suite.results import load_json

    run_result = load_json(results)
    rows, disjoint_total, pairs_total = [], 0, 0
    for backend in backends:
        copies = [v for v in run_result.variants if v.backend == backend and v.status == "ok"]
        for shape in [r.shape for r in copies[0].latency] if copies else []:
            lines = [next(r for r in v.latency if r.shape == shape) for v in copies]
            medians = [r.p50_ms for r in lines]
            pairs = list(itertools.combinations(lines, 2))
            disjoint = sum(a.ci95_p50_ms[1] < b.ci95_p50_ms[0] or b.ci95_p50_ms[1] < a.ci95_p50_ms[0]
                           for a, b in pairs)
            different = sum(compare_rows(a, b).verdict() != "no significant change" for a, b in pairs)
            width = max((r.ci95_p50_ms[1] - r.ci95_p50_ms[0]) / r.p50_ms for r in lines)
            rows.append([backend, shape, str(len(lines[0].processes) or 1),
                         f"{min(medians):.4g}-{max(medians):.4g} ms ({max(medians) / min(medians) - 1:.1%})",
                         f"{width / 2:.1%}", f"{disjoint}/{len(pairs)}", f"{different}/{len(pairs)}"])
            disjoint_total += disjoint
            pairs_total += len(pairs)
    return rows, disjoint_total, pairs_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=positive(int), default=4)
    parser.add_argument("--processes", type=positive(int), nargs="+", default=[1, 5])
    parser.add_argument("--backends", nargs="+", default=["eager", "onnxruntime"])
    parser.add_argument("--batch-sizes", type=positive(int), nargs="+", default=[1, 32])
    parser.add_argument("--out", type=Path, default=None, help="keep the runs' folders here (default: a temporary one)")
    args = parser.parse_args()
    head = ["backend", "shape", "processes", "medians of the copies (spread)", "widest +/- interval",
            "disjoint pairs", "called different"]
    with tempfile.TemporaryDirectory(prefix="suite-aa-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for processes in args.processes:
            results = run(processes, args.copies, args.backends, args.batch_sizes, out)
            rows, disjoint, pairs = table(results, args.backends)
            print(f"\n{processes} process(es) per shape: {disjoint} of {pairs} pairs of identical variants have "
                  f"disjoint 95 % intervals ({disjoint / max(pairs, 1):.1%}; goal: at most 5 %)")
            widths = [max(len(str(c)) for c in column) for column in zip(head, *rows, strict=False)]
            for line in [head, *rows]:
                print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)))


if __name__ == "__main__":
    main()
