"""Random inputs of a given shape, without labels: for latency-only benchmarks of untrained models."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from suite.config.params import Params
from suite.datasets.base import Dataset, DatasetSpec, Split


class RandomParams(Params):
    shape: tuple[PositiveInt, ...] = Field((3, 224, 224), min_length=1)  # of one sample
    num_classes: PositiveInt = 1000
    size: PositiveInt = 32  # test inputs, used for agreement between variants
    train_size: NonNegativeInt = 64  # inputs to calibrate static int8 with (no labels: never trained on)
    seed: int = 0


def load(params: RandomParams) -> Dataset:
    import torch

    generator = torch.Generator().manual_seed(params.seed)
    inputs = torch.randn((params.size, *params.shape), generator=generator)
    calibration = torch.randn((params.train_size, *params.shape), generator=generator)
    empty = Split(inputs[:0], torch.zeros(0, dtype=torch.long))
    return Dataset(
        name="random", source=f"generated: standard normal inputs of shape {list(params.shape)}, no labels",
        train=Split(calibration, torch.zeros(params.train_size, dtype=torch.long)), val=empty,
        test=Split(inputs, torch.zeros(params.size, dtype=torch.long)),
        num_classes=params.num_classes, labelled=False)


SPEC = DatasetSpec(
    description="generated standard-normal inputs of a given shape, no labels (latency and agreement only)",
    Params=RandomParams,
    load=load,
)
