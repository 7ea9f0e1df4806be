"""Shared parts of the cross-checks against the field's own harnesses (benchmarks/vs_*.py): the
model both sides time, suite's own timing of a prepared callable, and the alternating rounds.

Each round times suite and the peer once each, the order swapped every round, so that the
machine's drift (up to 2x over minutes on a shared VM) and the order within a round weigh on both
alike; the median of the per-round ratios (suite over peer) is the figure to read.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import models  # noqa: F401  (registers the model zoo)
from suite.measure import timing
from suite.registry import DATASETS, MODELS

SHAPES = {"resnet50": ("resnet_imagenet", {"depth": 50}, {"shape": [3, 224, 224], "num_classes": 1000}),
          "resnet18": ("resnet_imagenet", {"depth": 18}, {"shape": [3, 224, 224], "num_classes": 1000}),
          "resnet20": ("resnet", {"depth": 20}, {"shape": [3, 32, 32], "num_classes": 10})}


def arguments(doc: str, model: str, batch: int, rounds: int, seconds: float) -> argparse.ArgumentParser:
    """The options every cross-check takes, with its defaults."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default=model, choices=list(SHAPES), help="random weights")
    parser.add_argument("--batch", type=positive(int), default=batch)
    parser.add_argument("--rounds", type=positive(int), default=rounds)
    parser.add_argument("--seconds", type=positive(float), default=seconds, help="time per measurement, each side")
    return parser


def positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of `kind` above 0 (a batch of -1 or 0 rounds would measure nothing)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be above 0 and finite, got {text!r}")
        return value

    return parse


def model_and_inputs(name: str, batch: int):
    """The torch model behind `name` (random weights, seed 0) and a batch of its random inputs."""
    import torch

    model_name, model_params, data_params = SHAPES[name]
    dataset = DATASETS.get("random")
    data = dataset.load(dataset.Params(**data_params))
    torch.manual_seed(0)
    spec = MODELS.get(model_name)
    return spec.build(spec.Params(**model_params), data).eval(), data.test.x[:batch]


def suite_samples_ms(call: Callable[[], object], seconds: float) -> list[float]:
    """suite's harness on `call` (suite.measure.timing, as a variant is timed): the samples, in ms."""
    plan = timing.TimingPlan(warmup_s=1.0, min_samples=10, max_samples=100_000, min_time_s=seconds,
                             max_time_s=10 * seconds)
    return [s * 1e3 for s in timing.measure(call, lambda: None, plan).samples_s]


def alternate(label: str, ours: Callable[[], float], theirs: Callable[[], float], rounds: int,
              unit: str = "ms", peer: str = "peer") -> float:
    """Time both sides in alternating rounds; print each round and the median of the ratios."""
    ratios = []
    print(f"{label}: {'round':>5} {'suite ' + unit:>14} {peer + ' ' + unit:>18} {'ratio':>7}", flush=True)
    for round_ in range(1, rounds + 1):
        if round_ % 2:
            a = ours()
            b = theirs()
        else:
            b = theirs()
            a = ours()
        ratios.append(a / b)
        print(f"{label}: {round_:>5} {a:>14.4f} {b:>18.4f} {ratios[-1]:>7.3f}", flush=True)
    median = statistics.median(ratios)
    print(f"{label}: median ratio {median:.3f} over {rounds} rounds ({', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
    return median
