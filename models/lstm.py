"""LSTM sequence classifier (configurable layers, hidden size, direction)."""

from __future__ import annotations

import math

from pydantic import Field, PositiveInt

from models.spec import ModelSpec
from suite.config.params import Params


class LSTMParams(Params):
    hidden: PositiveInt = 128
    layers: PositiveInt = 1
    bidirectional: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between layers, when there are several
    embedding: PositiveInt = 64  # width of the token embedding, for token-id datasets only


def build(params: LSTMParams, data):
    from models.nets.lstm import LSTMClassifier

    if data.vocab_size:  # token ids: embed them
        return LSTMClassifier(params.embedding, params.hidden, params.layers, params.bidirectional,
                              data.num_classes, params.dropout, vocab_size=data.vocab_size)
    features = math.prod(data.input_shape[1:])  # per step; any number of steps
    return LSTMClassifier(features, params.hidden, params.layers, params.bidirectional, data.num_classes,
                          params.dropout)


SPEC = ModelSpec(
    description="LSTM sequence classifier (last step's hidden state, optional bidirectional); embeds token ids",
    Params=LSTMParams,
    build=build,
    dataset="digits_rows",
    train={"epochs": 100, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "patience": 15},
)
