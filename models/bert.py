"""BERT for text classification: all-MiniLM-L6-v2's real pretrained weights with a classification
head trained here, or a small BERT built from a BertConfig and trained from scratch."""

from __future__ import annotations

from pydantic import PositiveInt, model_validator

from models.spec import ModelSpec
from suite.config.params import Params


class PretrainedParams(Params):
    freeze_encoder: bool = False  # True: train the classification head only


class SmallBertParams(Params):
    layers: PositiveInt = 2
    hidden: PositiveInt = 128
    heads: PositiveInt = 2

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SmallBertParams:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


def build_pretrained(params: PretrainedParams, data):
    from models.nets.bert import pretrained
    from suite.datasets.topics import minilm_folder

    return pretrained(str(minilm_folder()), data.num_classes, params.freeze_encoder)


def build_small(params: SmallBertParams, data):
    from models.nets.bert import from_config
    from suite.errors import SuiteError

    if data.vocab_size is None:
        raise SuiteError(f"bert_small reads token ids, but dataset {data.name!r} is not tokenized text")
    return from_config(data.vocab_size, data.num_classes, params.layers, params.hidden, params.heads,
                       data.input_shape[0])


PRETRAINED = ModelSpec(
    description="BERT: all-MiniLM-L6-v2 (6 layers, real pretrained weights from its package), head trained here",
    Params=PretrainedParams,
    build=build_pretrained,
    dataset="topics",
    train={"epochs": 4, "batch_size": 32, "lr": 5e-5, "weight_decay": 0.01, "patience": 2},
)

SMALL = ModelSpec(
    description="small BERT from a BertConfig (default 2 layers, hidden 128), trained from scratch",
    Params=SmallBertParams,
    build=build_small,
    dataset="topics",
    train={"epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.01, "patience": 5},
)
