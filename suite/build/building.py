"""Building a variant: its dataset (in the model's own tokens for a decoder), the model with its
weights (the user's checkpoint, the training cache, or training), its compression steps in order,
and its backend prepared. One entry point, `Builder.build` then `Builder.prepare`, which the
measurement in this process (suite.run.bench), the isolated child (through suite.run.bench) and the
paired gate (`Builder.ready`) all call. Datasets and trained models are shared between the
variants one Builder builds.
"""

from __future__ import annotations

import copy
import io
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from suite.compress import CompressContext, compress
from suite.errors import SuiteError
from suite.measure.measuring import shape_of
from suite.phases import Phases
from suite.progress import Bars
from suite.registry import BACKENDS, DATASETS, MODELS, TASKS
from suite.config.scenario import PluginRef, Scenario, Variant
from suite.build.training import TrainConfig
from suite.build.weights import CheckpointCache, cache_root, code_fingerprint, obtain, use_cache_root
from suite.backends.base import Backend


@dataclass(frozen=True)
class Built:
    """A variant built: its model compressed, on its dataset, with the backend that will run it."""

    variant: Variant
    model_ref: PluginRef
    backend: Any
    measure: Any  # the variant's measure settings
    task: Any  # what measures it (suite.tasks.base.Task), from the model's spec
    data: Any
    model: Any
    weights: dict
    records: tuple


class Builder:
    def __init__(self, scenario: Scenario, bars: Bars, default_threads: int, cache_dir: Path | None = None):
        self.scenario, self.bars, self.default_threads = scenario, bars, default_threads
        root = cache_root(cache_dir)
        self.cache = CheckpointCache(root, bars.log)
        use_cache_root(root, bars.log)  # for the caches below the plugins (ONNX exports)
        self.phases = Phases()  # the current variant's
        self._datasets: dict[str, Any] = {}
        self._models: dict[str, tuple[Any, dict]] = {}
        self.for_later: dict | None = None  # what `build(..., for_later=True)` keeps for later processes

    def build(self, variant: Variant, kept: dict | None = None, for_later: bool = False) -> Built:
        """The variant's dataset, model (weights filled, compression steps applied) and backend.

        `for_later`: also keep, in `self.for_later`, what its later processes need to build it
        again cheaply (suite.measure.processes): the variant and the model as saved after the last
        compression step torch could save (a model a step leaves unpicklable, such as PT2E's,
        is saved as the step before left it; 0 steps: none saved). `kept`: that record, read
        back in a later process: the model is loaded and only the steps after it applied."""
        import torch

        if kept is not None:
            variant = kept["variant"]
        model_ref = self.scenario.model_of(variant)
        backend = BACKENDS.get(variant.backend.name)(variant.backend.params)
        measure = self.scenario.measure_of(variant)
        torch.set_num_threads(measure.threads or self.default_threads)
        task = TASKS.get(MODELS.get(model_ref.name).task)
        with self.phases("data"):
            data = self.dataset(variant, model_ref)
        self.for_later = {"variant": variant, "steps": 0} if for_later else None
        if kept is not None and kept.get("steps"):
            with self.phases("weights"):
                model = torch.load(io.BytesIO(kept["model_bytes"]), weights_only=False)  # the run's own file
            weights, done = kept["weights"], tuple(kept["records"])
        else:
            with self.phases("weights"):
                model, weights = self.trained_model(model_ref, data)
            done = ()
        model, records = self.compressed(variant, model_ref, model, data, backend, len(done), weights)
        return Built(variant, model_ref, backend, measure, task, data, model, weights, done + records)

    def prepare(self, built: Built) -> Any:
        """The backend's callable on batches, or for a decoder its suite.lm.Decoder (whose requests
        are checked against the model's positions)."""
        with self.phases("prepare"):
            return built.task.prepare(built, self.scenario.source)

    def ready(self, variant: Variant) -> Ready:
        """The variant built and prepared, to be timed by the caller (the paired gate); nothing is
        measured or saved."""
        built = self.build(variant)
        prepared = self.prepare(built)
        return built.task.ready(built, prepared, built.measure.threads or self.default_threads, self.scenario.source)

    def compressed(self, variant: Variant, model_ref: PluginRef, model: Any, data: Any, backend: Backend,
                   start: int = 0, weights: dict | None = None) -> tuple[Any, tuple]:
        """The model after the variant's compression steps from `start` on, in order, with a record
        of each (and, where `self.for_later` is kept, the model saved after each step that can be)."""
        records: list = []
        for i, step in enumerate(variant.compress[start:], start + 1):
            with self.bars.task(f"{variant.name}: {step.name}", total=None) as task, self.phases(f"compress: {step.name}"):
                model, record = compress(model, step, self.compress_context(model_ref, data, backend, task))
            records.append(record)
            self.bars.log(f"{variant.name}: {describe_step(record)}")
            if self.for_later is not None:
                self.keep_for_later(variant, i, model, weights, tuple(records))
        return model, tuple(records)

    def keep_for_later(self, variant: Variant, steps: int, model: Any, weights: dict | None, records: tuple) -> None:
        """The model after `steps` compression steps, saved for the variant's later processes (if
        torch can save it: else the last one that could be stays)."""
        import pickle

        import torch

        buffer = io.BytesIO()
        try:
            torch.save(model, buffer)
        except (pickle.PicklingError, TypeError, AttributeError, RuntimeError):
            return
        self.for_later = {"variant": variant, "steps": steps, "model_bytes": buffer.getvalue(), "weights": weights,
                          "records": records}

    def compress_context(self, model_ref: PluginRef, data: Any, backend: Backend, task: Any) -> CompressContext:
        def on_epoch(epoch: int, epochs: int, loss: float, val_accuracy: float) -> None:
            task.update(epoch, note=f"fine-tuning: loss {loss:.3f}  val acc {val_accuracy:.3f}", total=epochs)

        caps = self.scenario.train
        return CompressContext(data=data, seed=self.scenario.seed, train_recipe=MODELS.get(model_ref.name).train or {},
                               max_epochs=caps.max_epochs, max_batches=caps.max_batches,
                               device=backend.describe().get("device", "cpu"), on_epoch=on_epoch,
                               task=MODELS.get(model_ref.name).task)

    def dataset(self, variant: Variant, model_ref: PluginRef) -> Any:
        ref = variant.dataset or self.scenario.dataset or default_dataset(model_ref.name)
        key = json.dumps(ref.dump(), sort_keys=True)
        if key not in self._datasets:
            self._datasets[key] = DATASETS.get(ref.name).load(ref.params)
        spec = MODELS.get(model_ref.name)
        if spec.tokenizer is None:
            return self._datasets[key]
        tokens_key = json.dumps([ref.dump(), model_ref.dump()], sort_keys=True)  # text in the model's own tokens
        if tokens_key not in self._datasets:
            from suite.lm import tokenized

            tokenizer, label = spec.tokenizer(model_ref.params, self._datasets[key])
            self._datasets[tokens_key] = tokenized(self._datasets[key], tokenizer, label)
        return self._datasets[tokens_key]

    def trained_model(self, model_ref: PluginRef, data: Any) -> tuple[Any, dict]:
        """A fresh copy of the model with its weights (trained, cached or the user's checkpoint)."""
        key = json.dumps([model_ref.dump(), data.describe()], sort_keys=True)
        if key not in self._models:
            self._models[key] = self._build_and_fill(model_ref, data)
        model, weights = self._models[key]
        return copy.deepcopy(model), weights

    def uncompressed(self, model_ref: PluginRef, data: Any) -> Any:
        """The model as built and filled, before any compression (shared: do not change it)."""
        self.trained_model(model_ref, data)
        return self._models[json.dumps([model_ref.dump(), data.describe()], sort_keys=True)][0]

    def _build_and_fill(self, model_ref: PluginRef, data: Any) -> tuple[Any, dict]:
        import torch

        spec = MODELS.get(model_ref.name)
        torch.manual_seed(self.scenario.seed)
        model = spec.build(model_ref.params, data)
        if model_ref.checkpoint is None and spec.provides_weights:
            return model, {"source": "provided", "by": model_ref.dump()}
        if model_ref.checkpoint is None and (spec.train is None or not data.labelled):
            return model, self._untrained(model_ref.name, spec, data)
        config = train_config(spec.train, self.scenario)
        key_parts = {"model": model_ref.dump(), "dataset": data.describe(), "train": config.__dict__,
                     "seed": self.scenario.seed, "torch": torch.__version__.split("+")[0],
                     "code": code_fingerprint(model)}
        weights = obtain(model, model_ref.name, model_ref.checkpoint, key_parts, self.cache,
                         lambda: self._train(model, model_ref.name, data, config, TASKS.get(spec.task)))
        self.bars.log(describe_weights(model_ref.name, weights))
        return model, weights

    def _untrained(self, name: str, spec: Any, data: Any) -> dict:
        if spec.train is not None:
            raise SuiteError(f"{self.scenario.source}: model {name!r} needs training, but dataset {data.name!r} "
                             "has no labels: give the model a checkpoint or a labelled dataset")
        self.bars.log(f"{name}: random weights (seed {self.scenario.seed}), untrained: latency and agreement only")
        return {"source": "untrained", "init_seed": self.scenario.seed}

    def _train(self, model: Any, name: str, data: Any, config: TrainConfig, task: Any) -> dict:
        with self.bars.task(f"training {name}", total=config.epochs) as bar:
            def on_epoch(epoch: int, epochs: int, loss: float, score: float) -> None:
                bar.update(epoch, note=f"loss {loss:.3f}  {task.judged} {score:.3f}")

            return task.train(model, data, config, self.scenario.seed, on_epoch)


@dataclass(frozen=True)
class Ready:
    """A prepared variant: what the paired gate times in alternating rounds. For a generative
    decoder, `run_model` is its suite.lm.Decoder and each shape is (batch size, prompt length)."""

    run_model: Any
    backend: Any
    data: Any
    threads: int
    shapes: list[tuple[int, int | None]]  # (batch size, sequence length) its scenario times it at
    new_tokens: int | None = None  # a decoder's new tokens per request; None: not a decoder
    task: Any = None  # the task that made it (suite.tasks.base.Task): it knows how to time two alternately

    def call(self, batch_size: int, seq_len: int | None) -> Any:
        return shape_of(self.run_model, self.backend, self.data, batch_size, seq_len).call

    def request(self, batch_size: int, prompt_len: int) -> Any:
        """A decoder's greedy request: the call returns (prefill seconds, seconds of each later step)."""
        from suite.measure.decoding import one_request

        prompt = self.backend.place(self.data.windows("test", prompt_len, batch_size))
        return lambda: one_request(self.run_model, prompt, self.new_tokens, self.sync, time.perf_counter)

    def sync(self) -> None:
        self.backend.synchronize()

    def use_threads(self) -> None:
        import torch

        torch.set_num_threads(self.threads)


def describe_step(record: dict) -> str:
    before, after = record["before"], record["after"]
    return (f"{record['method']}: size {before['size_bytes'] / 2**20:.2f} -> {after['size_bytes'] / 2**20:.2f} MiB, "
            f"weights {before['weights']:,} -> {after['weights']:,}, sparsity {after['sparsity']:.1%}")


def default_dataset(model_name: str) -> PluginRef:
    name = MODELS.get(model_name).dataset
    return PluginRef(name, DATASETS.get(name).Params())


def train_config(recipe: dict, scenario: Scenario) -> TrainConfig:
    """The model's recipe with the scenario's overrides, and its caps (max_epochs, max_batches)."""
    overrides = scenario.train.model_dump(exclude_none=True)
    max_epochs = overrides.pop("max_epochs", None)
    config = TrainConfig(**{**recipe, **overrides})
    return replace(config, epochs=min(config.epochs, max_epochs)) if max_epochs else config


def describe_weights(name: str, weights: dict) -> str:
    if weights["source"] == "checkpoint":
        return f"{name}: loaded checkpoint {weights['path']}"
    if weights["source"] == "untrained":
        return f"{name}: untrained, random weights"
    if weights["source"] == "provided":
        return f"{name}: weights as loaded from the model's own file or factory"
    record = weights["training"]
    judged = (f"val perplexity {record['val_perplexity']:.3f}" if "val_perplexity" in record
              else f"val accuracy {record['val_accuracy']:.4f}")
    summary = f"{record['epochs_run']} epochs (best {record['best_epoch']}, {judged})"
    if weights["source"] == "cache":
        return f"{name}: loaded cached checkpoint {weights['path']}, no training (trained {summary})"
    return f"{name}: trained {summary} in {record['seconds']:.1f} s; cached at {weights['path']}"

