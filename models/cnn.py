"""The small CNN of the classic MNIST tutorials (conv-relu-pool blocks, then linear)."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from models.spec import ModelSpec
from suite.config.params import Params


class CNNParams(Params):
    channels: tuple[PositiveInt, PositiveInt] = (32, 64)
    hidden: PositiveInt = 128
    dropout: float = Field(0.25, ge=0.0, lt=0.5)


def build(params: CNNParams, data):
    from models.nets.cnn import SmallCNN

    channels, height, width = data.input_shape
    return SmallCNN(channels, (height, width), data.num_classes, params.channels, params.hidden, params.dropout)


SPEC = ModelSpec(
    description="small CNN of the MNIST tutorials: two 3x3 convolutions, max-pool, two linear layers",
    Params=CNNParams,
    build=build,
    dataset="digits",
    train={"epochs": 100, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "patience": 15},
)
