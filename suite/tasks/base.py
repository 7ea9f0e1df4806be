"""The task seam: what differs between kinds of model. A classifier is judged by accuracy and by
how its outputs follow its reference's; a generative decoder by perplexity and greedy fidelity,
and is timed per token. Everything else (building, compressing, launching, saving, comparing) is
the same code for both, and calls the model's task (its spec's `task`, a name in TASKS) where
they differ:

  prepare        the prepared model: the backend's callable, or a decoder
  measure        quality, agreement with the reference, timed shapes and profile -> result fields
  ready          what the paired gate times, and `paired` how it times it
  search_problem, judge       the search's check of its goal, and one trial's quality and times
  sample_batches what the layer-sensitivity ranking passes through the model
  train          the training loop of a model without weights, `judged` its progress figure
  select         the quality figures `select` judges a finished variant by
  report_section its part of the HTML report

Adding a task (an embedding model, a detector) is one file here, a subclass of Task, and one
registration line in suite/tasks/__init__.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from suite.config.scenario import Measure, PluginRef, Scenario, Select, Variant
from suite.config.search_spec import Goal

if TYPE_CHECKING:  # the engine's types only: reading a scenario asks its tasks, and stays light
    from suite.build.building import Built, Ready
    from suite.build.training import EpochCallback
    from suite.results import VariantResult
    from suite.run.bench import Bench


class Task:
    name: str
    description: str  # what a model of this task is, in messages: "model 'x' is <description>"
    judged: str  # the validation figure training reports each epoch

    def conflict(self, what: str, model: Any, variant: Variant, measure: Measure) -> tuple[tuple, str] | None:
        """Where and why the variant's settings (its `measure`, its search's goal) do not fit this
        task: (the field's path, the reason); `what` opens the reason ("model 'x' is ...")."""
        return None

    def prepare(self, built: Built, source: str) -> Any:
        raise NotImplementedError

    def measure(self, bench: Bench, built: Built) -> dict:
        """The variant's result fields: quality, agreement, timed shapes, profile, warnings."""
        raise NotImplementedError

    def time_again(self, bench: Bench, built: Built, round_: int) -> tuple[tuple, list[str]]:
        """The latency rows of the variant's `round_`-th process (suite.measure.processes): its
        shapes timed as `measure` times them, nothing else; and their warnings."""
        raise NotImplementedError

    def ready(self, built: Built, prepared: Any, threads: int, source: str) -> Ready:
        raise NotImplementedError

    def paired(self, sides: list, batch_size: int, seq_len: int | None, plan: Any, bar: Any) -> dict:
        """{metric: (base rounds, candidate rounds)} in ms, the two sides timed alternately."""
        raise NotImplementedError

    def search_problem(self, built: Built, goal: Goal) -> str | None:
        """Why the search's goal cannot be judged on this model's data (None: it can)."""
        return None

    def judge(self, run: Any, built: Built, measure: Measure, batch: int, reference: list | None,
              source: str) -> tuple[dict, Any, tuple[float, ...]]:
        """A search trial: (its quality figures, its outputs for the next trials' agreement, its
        timed samples in seconds)."""
        raise NotImplementedError

    def sample_batches(self, built: Built, batch_size: int) -> list:
        raise NotImplementedError

    def train(self, model: Any, data: Any, config: Any, seed: int, on_epoch: EpochCallback) -> dict:
        raise NotImplementedError

    def select(self, v: VariantResult, reference: VariantResult | None, select: Select) -> tuple[dict, list[str], str | None]:
        """(the variant's quality figures, the budgets it breaks, why it cannot be judged or None)."""
        raise NotImplementedError

    def report_section(self, variants: tuple[VariantResult, ...]) -> str:
        """This task's own section of the HTML report over its variants (may be empty)."""
        return ""


def agreement_reference(scenario: Scenario, variant: Variant, model_ref: PluginRef) -> str:
    """The scenario's baseline if it runs the same model on the same data; else the first variant that does."""
    def same_setup(other: Any) -> bool:
        return scenario.model_of(other) == model_ref and other.dataset == variant.dataset

    peers = [v.name for v in scenario.variants if same_setup(v)]
    return scenario.baseline if scenario.baseline in peers else peers[0]


def reference_outputs(bench: Bench, built: Built) -> tuple[str, Any]:
    """The variant's agreement reference and the outputs it saved (None: it did not run or failed)."""
    reference = agreement_reference(bench.scenario, built.variant, built.model_ref)
    return reference, bench.folder.outputs(reference)


def run_fields(built: Built) -> dict:
    """What every task's result says of how the variant ran: backend, data, weights, steps."""
    import torch

    return {"dataset": built.data.describe(), "weights": built.weights, "compress_records": tuple(built.records),
            "backend_info": {"version": built.backend.version(), "threads": torch.get_num_threads(),
                             **built.backend.describe()}}
