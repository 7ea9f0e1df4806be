"""suite's openvino variant against OpenVINO's own benchmark_app, on the same ONNX file. A benchmark,
not a test: it prints figures.

The model (ResNet-50 at 224x224 by default, random weights, batch 1, f32) is exported once by
suite (its cached ONNX export); suite's OpenVINO backend compiles it with the latency hint and
suite's harness times it; `benchmark_app -m FILE -d CPU -hint latency -infer_precision f32 -shape
... -t SECONDS` (it ships in the openvino package) times the same file in its own process, and its
median latency is read from its report. The two alternate in rounds (benchmarks/cross_check.py).

    python benchmarks/vs_benchmark_app.py [--model resnet50] [--batch 1] [--rounds 4] [--seconds 5]
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from cross_check import alternate, arguments, model_and_inputs, suite_samples_ms


def benchmark_app_median_ms(path: str, shape: list[int], seconds: float) -> float:
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    command = [tool, "-m", path, "-d", "CPU", "-hint", "latency", "-infer_precision", "f32",
               "-shape", f"[{','.join(map(str, shape))}]", "-t", str(max(1, round(seconds)))]  # it takes whole seconds
    done = subprocess.run(command, capture_output=True, text=True)
    found = re.search(r"Median:\s+([\d.]+)\s*ms", done.stdout)
    if done.returncode or not found:
        raise SystemExit(f"benchmark_app (exit {done.returncode}) printed no median latency:\n"
                         f"{(done.stdout + done.stderr)[-2000:]}")
    return float(found.group(1))


def main() -> None:
    args = arguments(__doc__, model="resnet50", batch=1, rounds=4, seconds=5.0).parse_args()
    import openvino

    from suite.backends.openvino import OpenVinoBackend, OpenVinoParams

    model, inputs = model_and_inputs(args.model, args.batch)
    backend = OpenVinoBackend(OpenVinoParams(precision="f32", performance_hint="LATENCY"))
    run = backend.prepare(model, inputs)
    placed = backend.place(inputs)
    print(f"OpenVINO {openvino.get_version()}; {args.model}, shape {list(inputs.shape)}, f32, latency hint, "
          f"{backend.threads} threads; file {backend.onnx.path}")
    alternate(f"{args.model} b={args.batch}",
              lambda: statistics.median(suite_samples_ms(lambda: run(placed), args.seconds)),
              lambda: benchmark_app_median_ms(str(backend.onnx.path), list(inputs.shape), args.seconds),
              args.rounds, peer="benchmark_app")


if __name__ == "__main__":
    main()
