"""A model whose latency is set on purpose: a chain of identical small layers, for measuring the
measurement (the latency gate's own benchmark). `slowdown` adds that fraction of blocks: with
the default 1,000 blocks, `slowdown: 0.10` runs 1,100, about 10 % more work, since nearly all of
its time is in the blocks."""

from __future__ import annotations

import math

from pydantic import Field, PositiveInt

from models.spec import ModelSpec
from suite.config.params import Params


class BusyParams(Params):
    blocks: PositiveInt = 1000
    width: PositiveInt = 32
    slowdown: float = Field(0.0, ge=0.0, le=10.0)


def build(params: BusyParams, data):
    import torch
    from torch import nn

    class Busy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(math.prod(data.input_shape), params.width)
            self.block = nn.Linear(params.width, params.width)
            self.out = nn.Linear(params.width, data.num_classes)
            self.repeats = round(params.blocks * (1 + params.slowdown))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.inp(x.flatten(1))
            for _ in range(self.repeats):
                x = torch.tanh(self.block(x))
            return self.out(x)

    return Busy()


SPEC = ModelSpec(
    description="a chain of identical small layers; `slowdown` adds that fraction of work (gate benchmark)",
    Params=BusyParams,
    build=build,
    dataset="digits",
    train=None,
)
