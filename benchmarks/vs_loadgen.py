"""suite's load modes against MLPerf LoadGen, on the same prepared model. A benchmark, not a test:
it prints figures. Needs the `loadgen` extra (pip install -c constraints.txt '.[onnx,loadgen]').

The model (ResNet-20's shape at 3x32x32 by default, random weights) is prepared once by suite's
onnxruntime backend; LoadGen's system under test calls that same callable, synchronously, one
query at a time (a single server: a query that arrives while another runs waits, and LoadGen
counts the wait). Three scenarios, each alternating suite and LoadGen in rounds
(benchmarks/cross_check.py):

- SingleStream: LoadGen's p90 latency against suite's p90 at batch 1 (suite.measure.timing).
- Offline: LoadGen issues every sample in one query and the SUT runs them in batches of --batch;
  its samples per second against suite's offline figure at that batch size (suite.measure.load).
- Server: the highest Poisson arrival rate whose p99 latency meets --bound-ms, found by the same
  bisection (suite.measure.load.search_rate's bracket and steps) with each tool judging its own
  trials: suite by its p99 (the 99 %-confidence upper bound when there are enough queries),
  LoadGen by the p99 it reports.

    python benchmarks/vs_loadgen.py [--model resnet20] [--rounds 3] [--seconds 3] [--batch 32] [--bound-ms 5]
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from cross_check import alternate, arguments, model_and_inputs, positive, suite_samples_ms


def loadgen_run(scenario: str, call_batch, batch: int, seconds: float, **settings) -> dict:
    """One LoadGen test in PerformanceOnly mode; its results, from its detail log."""
    import mlperf_loadgen as lg

    samples = 1024

    def issue(queries):
        for start in range(0, len(queries), batch):
            chunk = queries[start:start + batch]
            call_batch(len(chunk))
            lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in chunk])

    test = lg.TestSettings()
    test.scenario = getattr(lg.TestScenario, scenario)
    test.mode = lg.TestMode.PerformanceOnly
    test.min_duration_ms = int(seconds * 1000)
    test.min_query_count = 1
    for key, value in settings.items():
        setattr(test, key, value)
    with tempfile.TemporaryDirectory(prefix="vs-loadgen-") as folder:
        log = lg.LogSettings()
        log.log_output.outdir = folder
        log.log_output.copy_summary_to_stdout = False
        sut = lg.ConstructSUT(issue, lambda: None)
        qsl = lg.ConstructQSL(samples, samples, lambda ids: None, lambda ids: None)
        try:
            lg.StartTestWithLogSettings(sut, qsl, test, log)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        found = {}
        for line in (Path(folder) / "mlperf_log_detail.txt").read_text().splitlines():
            if ":::MLLOG" in line:
                entry = json.loads(line.split(":::MLLOG", 1)[1])
                found[entry["key"]] = entry["value"]
    return found


def main() -> None:
    parser = arguments(__doc__, model="resnet20", batch=32, rounds=3, seconds=3.0)
    parser.add_argument("--bound-ms", type=positive(float), default=5.0, help="Server: the p99 latency bound")
    parser.add_argument("--steps", type=positive(int), default=6, help="Server: bisection steps")
    parser.add_argument("--scenarios", nargs="+", default=["SingleStream", "Offline", "Server"],
                        choices=["SingleStream", "Offline", "Server"])
    args = parser.parse_args()
    import mlperf_loadgen  # noqa: F401  (fail early without the extra)
    import onnxruntime
    import torch

    from suite.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeParams
    from suite.measure import load, stats

    model, inputs = model_and_inputs(args.model, args.batch)
    backend = OnnxRuntimeBackend(OnnxRuntimeParams(device="cpu"))
    run = backend.prepare(model, inputs[:1])
    placed = {size: backend.place(inputs[:size]) for size in {1, args.batch}}

    def call_batch(size: int):  # LoadGen's queries: full batches of --batch, or single samples
        return run(placed[size] if size in placed else backend.place(inputs[:size]))

    print(f"ONNX Runtime {onnxruntime.__version__}, {torch.get_num_threads()} threads; {args.model}, "
          f"sample shape {list(inputs.shape[1:])}")
    if "SingleStream" in args.scenarios:
        one = statistics.median(suite_samples_ms(lambda: run(placed[1]), 1.0))
        alternate(f"{args.model} SingleStream p90",
                  lambda: stats.summarize(suite_samples_ms(lambda: run(placed[1]), args.seconds)).p90_ms,
                  lambda: loadgen_run("SingleStream", call_batch, 1, args.seconds,
                                      single_stream_expected_latency_ns=int(one * 1e6))
                  ["result_90.00_percentile_latency_ns"] / 1e6, args.rounds, peer="LoadGen")
    if "Offline" in args.scenarios:
        rate = args.batch / (statistics.median(suite_samples_ms(lambda: run(placed[args.batch]), 1.0)) / 1e3)
        alternate(f"{args.model} Offline b={args.batch} samples/s",
                  lambda: load.offline_summary([(args.batch, tuple(suite_samples_ms(
                      lambda: run(placed[args.batch]), args.seconds)))])["samples_per_s"],
                  lambda: loadgen_run("Offline", call_batch, args.batch, args.seconds, offline_expected_qps=rate)
                  ["result_samples_per_second"], args.rounds, unit="/s", peer="LoadGen")
    if "Server" in args.scenarios:
        service_s = statistics.median(suite_samples_ms(lambda: run(placed[1]), 1.0)) / 1e3
        queries = stats.min_samples_for_percentile(0.99)

        def suite_peak() -> float:
            found = load.search_rate(lambda rate: load.poisson_run(lambda: run(placed[1]), lambda: None, rate, queries,
                                                                   args.seconds, seed=0),
                                     service_s, args.bound_ms, args.steps)
            return found["max_rate_qps"] or float("nan")

        def loadgen_peak() -> float:
            low, high, best = 0.0, 1.0 / service_s, float("nan")
            for _ in range(args.steps):
                rate = (low + high) / 2
                found = loadgen_run("Server", call_batch, 1, args.seconds, server_target_qps=rate,
                                    server_target_latency_ns=int(args.bound_ms * 1e6), min_query_count=queries)
                met = found["result_99.00_percentile_latency_ns"] / 1e6 <= args.bound_ms
                low, high = (rate, high) if met else (low, rate)
                best = rate if met else best
            return best

        alternate(f"{args.model} Server p99<={args.bound_ms:g}ms peak queries/s", suite_peak, loadgen_peak,
                  args.rounds, unit="/s", peer="LoadGen")


if __name__ == "__main__":
    main()
