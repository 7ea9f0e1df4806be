"""A variant's `search:` block, read when the scenario is: its goal, strategy and budget
(SearchSpec), and whether it fits the variant's compression steps (spec_conflict). The search
itself, which builds and times trials, is suite.build.search: this configuration imports nothing of the
engine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from suite.config.params import NestedError, Params
from suite.errors import SuiteError

STRATEGIES = ("layer_fallback", "bisect", "grid")


class Goal(Params):
    """What a trial must keep, on the validation split, against the uncompressed model: accuracy at
    most this far below its (0.005: half a point); agreement at least this (top-1; for a decoder,
    the share of greedy tokens equal to its); for a decoder, perplexity at most this much above
    its (0.02: 2 % higher); for a decoder, teacher-forced, a mean KL divergence from its
    next-token distributions of at most max_kld_mean and the same top token at min_top1_agreement
    of positions at least."""

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0)
    min_agreement: float | None = Field(None, ge=0.0, le=1.0)
    max_perplexity_increase: float | None = Field(None, ge=0.0, le=1000.0)
    max_kld_mean: float | None = Field(None, ge=0.0, le=100.0)
    min_top1_agreement: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> Goal:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("give max_accuracy_drop, min_agreement, max_perplexity_increase, max_kld_mean or "
                             "min_top1_agreement")
        return self


class GridAxis(Params):
    step: int = Field(ge=0)  # index in the variant's compress list
    param: str
    values: tuple[Any, ...] = Field(min_length=1)


class SearchSpec(Params):
    goal: Goal
    strategy: Literal["layer_fallback", "bisect", "grid"]
    by: Literal["p50_ms", "p90_ms", "p99_ms", "mean_ms"] = "p50_ms"
    batch_size: PositiveInt | None = Field(None, le=65536)  # default: the variant's first batch size
    max_trials: int = Field(40, ge=1, le=1000)  # compressed trials; the reference is not counted
    max_time_s: float = Field(1800.0, gt=0, le=7 * 86400)
    sensitivity: Literal["trials", "weights", "weights_and_inputs"] = "trials"  # layer_fallback: how layers are ranked
    # bisect: which setting, over which range, to what precision
    param: str | None = None
    low: float | None = None
    high: float | None = None
    tolerance: float | None = Field(None, gt=0)
    # grid: filled from the lists in the variant's steps (suite.config.sweep), not written by hand
    grid: tuple[GridAxis, ...] = ()

    @model_validator(mode="after")
    def _strategy_settings(self) -> SearchSpec:
        if self.strategy == "bisect":
            for key in ("param", "low", "high"):
                if getattr(self, key) is None:
                    raise NestedError((key,), "strategy bisect needs param, low and high")
            if self.low >= self.high:
                raise NestedError(("high",), f"must be above low ({self.low:g})")
        elif self.param is not None or self.low is not None or self.high is not None:
            raise NestedError(("param",), f"param, low and high are for strategy bisect, not {self.strategy}")
        if self.sensitivity != "trials" and self.strategy != "layer_fallback":
            raise NestedError(("sensitivity",), f"ranks layers for strategy layer_fallback, not {self.strategy}")
        if self.strategy == "grid" and not self.grid:
            raise NestedError(("strategy",), "strategy grid needs a list of values in a compress step's setting, "
                                             "e.g. {method: magnitude, sparsity: [0.3, 0.5, 0.7]}")
        return self


def spec_conflict(variant: Any) -> tuple[tuple, str] | None:
    """Where and why a variant's `search` does not fit its compression steps (scenario validation)."""
    from suite.registry import METHODS

    search = variant.search
    fields = [METHODS.get(step.name).Params.model_fields for step in variant.compress]
    if search.strategy == "layer_fallback":
        able = [i for i, f in enumerate(fields) if "keep_float" in f]
        if len(able) != 1:
            methods = [name for name in METHODS.names() if "keep_float" in METHODS.get(name).Params.model_fields]
            why = "none can" if not able else f"{len(able)} can: say which by leaving one"
            return ("search", "strategy"), (f"layer_fallback needs one compression step that can leave layers in "
                                            f"float ({why}; methods that can: {', '.join(methods)})")
        if variant.compress[able[0]].params.keep_float:
            return ("compress", able[0], "keep_float"), "layer_fallback chooses the layers kept in float: leave it out"
        step = variant.compress[able[0]].name
        if search.sensitivity != "trials" and not METHODS.get(step).makes.startswith(("torch", "eager")):  # FORMATS
            return ("search", "sensitivity"), (f"{search.sensitivity} ranks torch modules, and {step!r} leaves nodes "
                                               "of an ONNX graph in float: use trials")
    if search.strategy == "bisect":
        having = [i for i, f in enumerate(fields) if search.param in f]
        if len(having) != 1:
            return ("search", "param"), (f"no compression step has a setting {search.param!r}" if not having else
                                         f"{len(having)} compression steps have a setting {search.param!r}")
        annotation = fields[having[0]][search.param].annotation
        if annotation not in (int, float) and "float" not in str(annotation) and "int" not in str(annotation):
            return ("search", "param"), f"setting {search.param!r} is not a number"
        for bound in ("low", "high"):
            try:
                step_with(variant.compress[having[0]], search.param, getattr(search, bound))
            except SuiteError as exc:
                return ("search", bound), str(exc)
    for i, axis in enumerate(search.grid):
        if not 0 <= axis.step < len(variant.compress):
            return ("search", "grid", i, "step"), (f"{axis.step}: the variant has {len(variant.compress)} compression "
                                                   f"step(s), numbered from 0")
        for value in axis.values:
            try:
                step_with(variant.compress[axis.step], axis.param, value)
            except SuiteError as exc:
                return ("compress", axis.step, axis.param), str(exc)
    if variant.measure is not None and variant.measure.mode != "single_stream":
        return ("measure", "mode"), "a searched variant is timed in single_stream mode"
    return None


def step_with(step: Any, key: str, value: Any) -> Any:
    """`step` (a PluginRef) with one setting changed, validated by its method's Params."""
    from pydantic import ValidationError

    from suite.config.params import first_error

    try:
        params = type(step.params).model_validate({**step.params.model_dump(), key: value})
    except ValidationError as exc:
        loc, message = first_error(exc)
        raise SuiteError(f"{step.name}.{'.'.join(map(str, loc))}: {message}") from None
    return replace(step, params=params)
