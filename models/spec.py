"""What a reference model registers: its parameters, how to build it, and how to train it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from suite.config.params import Params


@dataclass(frozen=True)
class ModelSpec:
    description: str
    Params: type[Params]
    # build(params, dataset) -> torch.nn.Module; torch is imported inside, so that
    # validating a scenario never imports it.
    build: Callable[[Any, Any], Any]
    dataset: str | None  # the dataset it trains on when a scenario names none; None: must be named
    # The default training recipe; None for a model benchmarked with random (seeded) weights.
    train: dict[str, Any] | None = field(default_factory=dict)
    # True when build() returns the model with its weights (a file or factory of the user's).
    provides_weights: bool = False
    # "classify": a callable on input batches, judged by accuracy; "generate": a causal LM, judged by
    # perplexity and greedy fidelity, timed token by token (suite.lm, suite.tasks.generate).
    task: str = "classify"
    # Generative decoders: tokenizer(params, corpus) -> (transformers tokenizer, a short label);
    # build(params, data) then gets the corpus tokenized by it (suite.lm.LmData).
    tokenizer: Callable[[Any, Any], tuple[Any, str]] | None = None
    # The form build() returns it in (suite.config.scenario.FORMATS): which compression steps and backends take it.
    format: str = "torch"
    # fixed_axes(params) -> the sizes its own file fixes on the input's axes (None: any is taken; ():
    # not known); read when a scenario is validated, so that other batch sizes and sequence lengths
    # are refused before anything runs.
    fixed_axes: Callable[[Any], tuple[int | None, ...]] | None = None
    # Generative decoders: positions(params) -> the positions (context) the model has, from its
    # settings or its own config (None: not known before it is built); read when a scenario is
    # validated, so that requests longer than that are refused once, before anything runs.
    positions: Callable[[Any], int | None] | None = None
