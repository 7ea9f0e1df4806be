"""suite's onnxruntime variant against ONNX Runtime's own timing of the session. A benchmark, not
a test: it prints figures.

The model (ResNet-50 at 224x224 by default, random weights, batch 1) is exported once by suite
(its cached ONNX export). suite's onnxruntime backend prepares a session and suite's harness
times it. Two peers, each a second session of the same file with the same settings (threads,
graph optimization), each alternating with suite in rounds (benchmarks/cross_check.py):

- ONNX Runtime's leanest call path: the input bound once (IO binding), run_with_iobinding timed
  call by call;
- ONNX Runtime's own profiler (enable_profiling): the median of its `model_run` events, its
  clock inside the session (profiling records every node, which costs time of its own).

    python benchmarks/vs_onnxruntime.py [--model resnet50] [--batch 1] [--rounds 4] [--seconds 5]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from cross_check import alternate, arguments, model_and_inputs, suite_samples_ms


def session_like(backend, profile_prefix: str | None = None):
    """A second session of the backend's file with its settings (threads, graph optimization)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    options.intra_op_num_threads = backend.session.get_session_options().intra_op_num_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(backend.onnx.path), options, providers=["CPUExecutionProvider"])


def ort_bound_loop(backend, inputs):
    """ONNX Runtime's leanest call: a session with its input bound once (IO binding), its output
    bound to host memory, run_with_iobinding timed call by call with perf_counter."""
    session = session_like(backend)
    binding = session.io_binding()
    binding.bind_cpu_input(backend.onnx.input_name, inputs)
    binding.bind_output(backend.onnx.output_name)

    def median_ms(seconds: float) -> float:
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < 1.0 + seconds:  # the first second: warm-up, as suite's plan
            before = time.perf_counter()
            session.run_with_iobinding(binding)
            after = time.perf_counter()
            if before - start >= 1.0:
                times.append((after - before) * 1e3)
        return statistics.median(times)

    return median_ms


def ort_profiled_median_ms(backend, inputs, seconds: float) -> float:
    """ONNX Runtime's own profile of a session like the backend's: median model_run, in ms."""
    with tempfile.TemporaryDirectory(prefix="vs-ort-") as folder:
        session = session_like(backend, str(Path(folder) / "ort"))
        feed, fetch = {backend.onnx.input_name: inputs}, [backend.onnx.output_name]
        start = time.perf_counter()
        while time.perf_counter() - start < 1.0:  # warm-up, as suite's plan has one
            session.run(fetch, feed)
        warm = time.perf_counter()
        while time.perf_counter() - warm < seconds:
            session.run(fetch, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    warm_us = (warm - start) * 1e6
    runs = sorted((e["ts"], e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first = runs[0][0] if runs else 0
    timed = [dur / 1e3 for ts, dur in runs if ts - first >= warm_us]
    return statistics.median(timed)


def main() -> None:
    args = arguments(__doc__, model="resnet50", batch=1, rounds=4, seconds=5.0).parse_args()
    import onnxruntime
    import torch

    from suite.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeParams

    model, inputs = model_and_inputs(args.model, args.batch)
    backend = OnnxRuntimeBackend(OnnxRuntimeParams(device="cpu"))
    run = backend.prepare(model, inputs)
    placed = backend.place(inputs)
    print(f"ONNX Runtime {onnxruntime.__version__}; {args.model}, shape {list(inputs.shape)}, "
          f"{torch.get_num_threads()} threads, graph optimization all")
    ours = lambda: statistics.median(suite_samples_ms(lambda: run(placed), args.seconds))  # noqa: E731
    alternate(f"{args.model} b={args.batch}", ours, lambda: ort_bound_loop(backend, placed)(args.seconds),
              args.rounds, peer="ORT IO binding")
    alternate(f"{args.model} b={args.batch}", ours, lambda: ort_profiled_median_ms(backend, placed, args.seconds),
              args.rounds, peer="ORT profiler")


if __name__ == "__main__":
    main()
