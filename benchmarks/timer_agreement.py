"""Does suite's timer agree with torch.utils.benchmark? A benchmark, not a test: it prints figures.

For each model (the MLP on digits, an ImageNet-shaped ResNet-18 and MiniLM, all at batch 1), the
same prepared callable (suite's eager backend) is timed by suite's own harness
(suite.measure.timing.measure) and by torch.utils.benchmark.Timer.blocked_autorange, alternately,
in this one process, and the medians and their ratio are printed per round. The two alternate
in short rounds, each round in the other order, so that the machine's drift (up to 2x over
minutes on a shared VM) and the order within a round weigh on both alike; the median of the
per-round ratios is the figure to read. Also the harness's own cost per timed call (a no-op
through the same path).

    python benchmarks/timer_agreement.py [--rounds 8] [--seconds 1.5] [--models mlp resnet18 bert]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.utils.benchmark as torch_benchmark
from cross_check import positive

import models  # noqa: F401  (registers the model zoo)
from suite.backends.eager import EagerBackend, EagerParams
from suite.measure import timing
from suite.measure.measuring import batch_of
from suite.registry import DATASETS, MODELS

MODELS_TIMED = {
    "mlp": ("mlp", {}, "digits", {}),
    "resnet18": ("resnet_imagenet", {"depth": 18}, "random", {"shape": [3, 224, 224], "num_classes": 1000}),
    "bert": ("bert", {}, "topics", {}),
}


def prepared(name: str):
    """The model behind `name` as suite's eager backend runs it, and one input of batch 1."""
    model_name, model_params, data_name, data_params = MODELS_TIMED[name]
    spec, dataset = MODELS.get(model_name), DATASETS.get(data_name)
    data = dataset.load(dataset.Params(**data_params))
    torch.manual_seed(0)
    model = spec.build(spec.Params(**model_params), data)
    backend = EagerBackend(EagerParams(device="cpu"))
    return backend.prepare(model, data.test.x[:1]), batch_of(data.test.x, 1)


def suite_median(run, inputs, seconds: float) -> float:
    plan = timing.TimingPlan(warmup_s=0.5, min_samples=100, max_samples=100_000, min_time_s=seconds,
                             max_time_s=10 * seconds)
    measured = timing.measure(lambda: run(inputs), lambda: None, plan)
    return statistics.median(measured.samples_s)


def torch_median(run, inputs, seconds: float) -> float:
    timer = torch_benchmark.Timer(stmt="run(inputs)", globals={"run": run, "inputs": inputs},
                                  num_threads=torch.get_num_threads())  # its default is one thread
    return timer.blocked_autorange(min_run_time=seconds).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive(int), default=8)
    parser.add_argument("--seconds", type=positive(float), default=1.5, help="minimum time per measurement")
    parser.add_argument("--models", nargs="+", default=list(MODELS_TIMED), choices=list(MODELS_TIMED))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"harness cost per timed call: {timing.harness_cost(lambda: None, calls=10_000) * 1e6:.2f} us")
    print(f"{'model':<10} {'round':>5} {'suite ms':>10} {'torch ms':>10} {'ratio':>7}")
    for name in args.models:
        run, inputs = prepared(name)
        ratios = []
        for round_ in range(1, args.rounds + 1):
            if round_ % 2:
                ours, theirs = suite_median(run, inputs, args.seconds), torch_median(run, inputs, args.seconds)
            else:
                theirs, ours = torch_median(run, inputs, args.seconds), suite_median(run, inputs, args.seconds)
            ratios.append(ours / theirs)
            print(f"{name:<10} {round_:>5} {ours * 1e3:>10.4f} {theirs * 1e3:>10.4f} {ratios[-1]:>7.3f}")
        print(f"{name:<10} {'median':>5} {'':>10} {'':>10} {statistics.median(ratios):>7.3f}")


if __name__ == "__main__":
    main()
