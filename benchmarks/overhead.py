"""Where a whole run's time goes beyond the sampling it asks for (issue 15, item 11).

Runs `python -m suite run SCENARIO` RUNS times one after another with one cache folder (the first
run fills the checkpoint and ONNX caches; the last one is the "warm" figure), and prints for each:
the wall time of the command, the time spent in timed samples (the sum of every sample times its
loops, from results.json), the overhead (wall minus sampling) and its share of the wall time,
the time outside the variants (imports, fingerprint, report) and the variants' phases added up.

    python benchmarks/overhead.py scenarios/resnet.yaml --cache-dir /tmp/suite-cache --runs 2

Run it on a quiet machine: other processes stretch every phase (the run's own warnings say so).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cross_check import positive

from suite.phases import grouped


def one_run(scenario: Path, cache_dir: Path, out: Path) -> dict:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "suite", "run", str(scenario), "--out", str(out), "--cache-dir", str(cache_dir)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    [results] = sorted(out.glob("*/*/results.json"))[-1:]
    variants = json.loads(results.read_text())["variants"]
    sampling = sum(sum(row["samples_ms"]) * row["loops"] / 1e3 for v in variants for row in v["latency"])
    phases = grouped(*(v.get("phases") for v in variants))
    in_variants = sum(v.get("seconds") or 0.0 for v in variants)
    return {"wall_s": wall, "sampling_s": sampling, "outside_variants_s": wall - in_variants, "phases": phases,
            "variants": len(variants)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path, nargs="?", default=Path("scenarios/resnet.yaml"))
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--runs", type=positive(int), default=2)
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="suite-overhead-cache-"))
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="suite-overhead-") as out:
            r = one_run(args.scenario, cache, Path(out))
        overhead = r["wall_s"] - r["sampling_s"]
        print(f"run {i}: {r['variants']} variants, wall {r['wall_s']:.1f} s, sampling {r['sampling_s']:.1f} s, "
              f"overhead {overhead:.1f} s ({overhead / r['wall_s']:.0%} of wall; goal <= 25%), "
              f"outside the variants {r['outside_variants_s']:.1f} s")
        print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(r["phases"].items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
