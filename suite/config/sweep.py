"""Parameter sweeps: a list where a compression method expects one value expands the variant.

`compress: [{method: magnitude, sparsity: [0.5, 0.7]}]` in variant `pruned` becomes variants
`pruned[sparsity=0.5]` and `pruned[sparsity=0.7]`; several swept keys give every combination.
The number of variants a scenario makes is counted before anything is expanded and capped (the
scenario's `max_variants`, DEFAULT_MAX_VARIANTS unless it says more), so a few swept lists cannot
make a validation that never ends. A variant with `search: {strategy: grid}` is not expanded:
its search tries the lists (suite.build.search) and it stays one variant.
"""

from __future__ import annotations

import copy
import itertools
import math
import types
import typing
from typing import Any

from suite.config.params import NestedError
from suite.registry import METHODS

DEFAULT_MAX_VARIANTS = 1000
LIMIT_MAX_VARIANTS = 100_000  # what `max_variants` may raise the cap to


def expand_variants(variants: list, max_variants: int = DEFAULT_MAX_VARIANTS) -> tuple[list, list[int]]:
    """The variants with sweeps expanded, and for each the index of the variant it came from;
    NestedError (at `max_variants`, or at the variant that passes it) over the cap."""
    counts = [count(v) if isinstance(v, dict) else 1 for v in variants]
    if sum(counts) > max_variants:
        worst = max(range(len(counts)), key=counts.__getitem__)
        raise NestedError(("variants", worst), f"its sweeps make {counts[worst]:,} variants; the scenario would have "
                          f"{sum(counts):,}, over max_variants {max_variants:,} (set max_variants to allow more, "
                          f"up to {LIMIT_MAX_VARIANTS:,})")
    expanded, origin = [], []
    for index, variant in enumerate(variants):
        copies = expand(variant) if isinstance(variant, dict) else [variant]
        expanded += copies
        origin += [index] * len(copies)
    return expanded, origin


def count(variant: dict) -> int:
    """How many variants `variant` expands to, without expanding it."""
    return 1 if searched_grid(variant) else math.prod(len(values) for _, _, values in axes_of(variant))


def searched_grid(variant: dict) -> bool:
    search = variant.get("search")
    return isinstance(search, dict) and search.get("strategy") == "grid"


def axes_of(variant: dict) -> list[tuple[int, str, list]]:
    """(step index, key, values) of every swept key; none where the variant has no name to suffix
    (its validation then says the name is missing)."""
    steps = variant.get("compress") if isinstance(variant.get("compress"), list) else []
    if not isinstance(variant.get("name"), str):
        return []
    return [(i, key, values) for i, step in enumerate(steps) for key, values in swept_keys(step)]


def expand(variant: dict) -> list[dict]:
    steps, axes = variant.get("compress"), axes_of(variant)
    if not axes:
        return [variant]
    if searched_grid(variant):  # a grid search tries the lists itself: one variant, the first values
        new_steps = copy.deepcopy(steps)
        for i, key, values in axes:
            new_steps[i][key] = values[0]
        grid = [{"step": i, "param": key, "values": values} for i, key, values in axes]
        return [{**variant, "compress": new_steps, "search": {**variant["search"], "grid": grid}}]
    copies = []
    for combination in itertools.product(*(values for _, _, values in axes)):
        new_steps = copy.deepcopy(steps)
        for (i, key, _), value in zip(axes, combination, strict=False):
            new_steps[i][key] = value
        suffix = ",".join(f"{key}={value}" for (_, key, _), value in zip(axes, combination, strict=False))
        copies.append({**variant, "name": f"{variant.get('name')}[{suffix}]", "compress": new_steps})
    return copies


def swept_keys(step: Any) -> list[tuple[str, list]]:
    """The keys of a step that hold a non-empty list where the method's config takes one value."""
    if not isinstance(step, dict) or step.get("method") not in METHODS.names():
        return []
    fields = METHODS.get(step["method"]).Params.model_fields
    return [(key, value) for key, value in step.items()
            if isinstance(value, list) and value and key in fields and not takes_sequence(fields[key].annotation)]


def takes_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(takes_sequence(arg) for arg in typing.get_args(annotation))
    return origin in (tuple, list) or annotation in (tuple, list)
