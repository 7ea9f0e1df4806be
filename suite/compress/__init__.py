"""Compression methods, applied in the order a variant lists them.

One file per family registers its methods here (quantization, pruning, ...). A method is an
object with `Params` (its config) and `apply(module, params, context) -> (module, record)`,
where `record` is a dict of what it did (kept in the results).
"""

from __future__ import annotations

from typing import Any

from suite.registry import METHODS


def compress(module: Any, step: Any, context: Any) -> tuple[Any, dict]:
    """Apply one compression step (a validated PluginRef) to `module`; return it and its record."""
    return METHODS.get(step.name).apply(module, step.params, context)
