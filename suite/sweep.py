"""Parameter sweeps: a list where a compression method expects one value expands the variant.

`compress: [{method: magnitude, sparsity: [0.5, 0.7]}]` in variant `pruned` becomes variants
`pruned[sparsity=0.5]` and `pruned[sparsity=0.7]`; several swept keys give every combination.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from typing import Any

from suite.registry import METHODS


def expand_variants(variants: list) -> tuple[list, list[int]]:
    """The variants with sweeps expanded, and for each the index of the variant it came from."""
    expanded, origin = [], []
    for index, variant in enumerate(variants):
        copies = expand(variant) if isinstance(variant, dict) else [variant]
        expanded += copies
        origin += [index] * len(copies)
    return expanded, origin


def expand(variant: dict) -> list[dict]:
    steps = variant.get("compress") if isinstance(variant.get("compress"), list) else []
    axes = [(i, key, values) for i, step in enumerate(steps) for key, values in swept_keys(step)]
    if not axes:
        return [variant]
    copies = []
    for combination in itertools.product(*(values for _, _, values in axes)):
        new_steps = copy.deepcopy(steps)
        for (i, key, _), value in zip(axes, combination):
            new_steps[i][key] = value
        suffix = ",".join(f"{key}={value}" for (_, key, _), value in zip(axes, combination))
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
