"""What a compression method is, the context it runs in, and the one verb that applies it.

A method is a MethodSpec: its config (`Params`), `apply(module, params, context) -> (module,
notes)` and `available(device) -> reason or None`. `compress` wraps every method alike: it
measures the module before and after and keeps a per-layer table, so each variant's results
say what the method really did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from suite.config.params import Params


class NotApplicable(Exception):
    """The method cannot apply to this model (no layer it knows, wrong input type, ...)."""


@dataclass(frozen=True)
class CompressContext:
    data: Any  # the variant's Dataset: calibration batches, fine-tuning
    seed: int
    train_recipe: dict  # the model's training recipe (batch size, lr, ...), for fine-tuning
    max_epochs: int | None = None  # caps on fine-tuning, set by --quick
    max_batches: int | None = None  # per epoch
    device: str = "cpu"
    task: str = "classify"  # "generate": a causal LM, called with keyword arguments (suite.lm.Decoder)
    on_epoch: Callable | None = None  # progress of fine-tuning


@dataclass(frozen=True)
class MethodSpec:
    description: str
    Params: type[Params]
    apply: Callable[[Any, Any, CompressContext], tuple[Any, dict]]
    # None when the method can run on `device`; otherwise why not (the variant is skipped).
    available: Callable[[str], str | None] = field(default=lambda device: None)
    requires: tuple[str, ...] = ()  # modules it imports, from the `compress` extra
    takes: tuple[str, ...] = ("torch",)  # the model formats it can start from (see scenario.FORMATS)
    makes: str = "torch"  # the format of the model it returns
    extra: str = "compress"  # the pyproject extra that installs `requires`
    tasks: tuple[str, ...] = ("classify",)  # the model tasks it applies to (suite.tasks)

    def unavailable(self, device: str) -> str | None:
        """Why this method cannot run here on `device`, or None."""
        from suite.registry import missing_extra

        return missing_extra(self.requires, self.extra) or self.available(device)


def compress(module: Any, step: Any, context: CompressContext) -> tuple[Any, dict]:
    """Apply one step (a validated PluginRef) to `module`; return it and the record of what it did."""
    from suite.compress import record
    from suite.errors import SuiteError
    from suite.registry import METHODS

    before = record.footprint(module)
    try:
        module, notes = METHODS.get(step.name).apply(module, step.params, context)
    except NotApplicable as exc:
        raise SuiteError(f"compress: {step.name}: {exc}") from None
    return module, {"method": step.name, "params": step.params.model_dump(mode="json"),
                    "before": before, "after": record.footprint(module),
                    "layers": record.layer_table(module), **notes}
