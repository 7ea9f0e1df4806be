"""GPT-2: the architecture of transformers' GPT2LMHeadModel, trained here on the text corpus
(a small one, in minutes), or at the 124M shape with random weights (like resnet_imagenet)."""

from __future__ import annotations

from pydantic import Field, model_validator

from models.spec import ModelSpec
from suite.config.params import Params


class Gpt2Params(Params):
    layers: int = Field(2, ge=1, le=48)
    hidden: int = Field(128, ge=8, le=4096)
    heads: int = Field(4, ge=1, le=64)
    context: int = Field(256, ge=16, le=8192)  # positions the model has (n_positions)
    vocab: int = Field(2048, ge=300, le=65536)  # byte-level BPE vocabulary trained on the train split

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> Gpt2Params:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


class Gpt2LargeParams(Gpt2Params):
    layers: int = Field(12, ge=1, le=48)
    hidden: int = Field(768, ge=8, le=4096)
    heads: int = Field(12, ge=1, le=64)
    context: int = Field(1024, ge=16, le=8192)
    vocab: int = Field(50257, ge=300, le=65536)  # the model's embedding size; the tokenizer here makes fewer


def tokenizer(params: Gpt2Params, corpus):
    from models.nets.gpt2 import bpe_tokenizer

    return bpe_tokenizer(corpus.train, params.vocab), f"byte-level BPE trained on {corpus.name}'s train split"


def build(params: Gpt2Params, data):
    from models.nets.gpt2 import gpt2

    vocab = max(params.vocab, data.vocab_size)
    return gpt2(vocab, params.layers, params.hidden, params.heads, params.context, data.tokenizer.eos_token_id)


def positions(params: Gpt2Params) -> int:
    return params.context


SMALL = ModelSpec(
    description="GPT-2 architecture (GPT2LMHeadModel), small (default 2 layers, hidden 128), trained here on text",
    Params=Gpt2Params, build=build, dataset="pydoc", task="generate", tokenizer=tokenizer, positions=positions,
    train={"epochs": 12, "steps_per_epoch": 100, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.01, "patience": 3},
)
RANDOM = ModelSpec(
    description="GPT-2 at the 124M shape (12 layers, hidden 768), random weights: timing and agreement only",
    Params=Gpt2LargeParams, build=build, dataset="pydoc", task="generate", tokenizer=tokenizer, train=None,
    positions=positions,
)
