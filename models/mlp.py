"""A multi-layer perceptron classifier with configurable hidden sizes."""

from __future__ import annotations

import math

from pydantic import Field, PositiveInt

from models.spec import ModelSpec
from suite.config.params import Params


class MLPParams(Params):
    hidden: tuple[PositiveInt, ...] = (256, 128)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


def build(params: MLPParams, data):
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(data.input_shape)
    for size in params.hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(params.dropout)]
        width = size
    layers.append(nn.Linear(width, data.num_classes))
    return nn.Sequential(*layers)


SPEC = ModelSpec(
    description="multi-layer perceptron (ReLU, dropout), flattened input",
    Params=MLPParams,
    build=build,
    dataset="digits",
    train={"epochs": 200, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "patience": 20},
)
