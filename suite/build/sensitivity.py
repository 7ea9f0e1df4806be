"""A cheap ranking of layers for a layer_fallback search (`search.sensitivity`): each layer's
output error, on validation inputs and relative to its float output, when its weights are rounded
to int8 (symmetric, one scale per output channel: `weights`, as weight-only methods do), or its
weights and its input (256 levels over the input's range: `weights_and_inputs`, as int8 with
dynamic activations does). One pass over those inputs, where ranking by trials measures a trial
per layer; the layers downstream see float inputs, as in a trial each layer is judged alone.

A proxy: it rounds roughly as the methods do (int8 whatever their bits, one range per input) and
does not see the backend's kernels, so its ranking can differ from the trials' (docs/backends.md
gives the two measured against each other); the fallback trials that follow are measured as always, so
the goal is still judged on the real backend.
"""

from __future__ import annotations

import math
from typing import Any

SAMPLES = 256  # a classifier's validation inputs passed through the model
WINDOWS, WINDOW_TOKENS = 4, 64  # a decoder's: windows of validation tokens


def round_to_int8(weight: Any) -> Any:
    """`weight` rounded to int8 with one symmetric scale per row of its first axis (the output
    channel of Linear and convolution layers), back in its own dtype."""
    import torch

    flat = weight.detach().float().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1).clamp(min=1e-12) / 127)[:, None]
    return (torch.round(flat / scale).clamp(-127, 127) * scale).reshape(weight.shape).to(weight.dtype)


def round_input_to_uint8(x: Any) -> Any:
    """A floating-point input rounded as dynamic int8 quantization rounds activations: 256 levels
    between its own minimum and maximum (zero kept exact); other inputs (token ids) as they are."""
    import torch

    if not torch.is_floating_point(x):
        return x
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (high - low) / 255 or 1.0
    zero = round(-low / scale)
    return ((torch.round(x / scale) + zero).clamp(0, 255) - zero) * scale


def weight_rounding_errors(model: Any, names: list[str], batches: list[Any],
                           inputs_too: bool = False) -> dict[str, float | None]:
    """For each named module, sum ||f(x; round(W)) - f(x; W)||^2 / sum ||f(x; W)||^2 over the inputs
    it sees while `model` runs `batches` (`inputs_too`: f(round(x); round(W)), as int8 with dynamic
    activations computes); None for a name that is no module with a weight tensor, that saw no
    input, or whose outputs are not finite."""
    import torch

    modules = dict(model.named_modules())
    errors = {name: 0.0 for name in names}
    norms = {name: 0.0 for name in names}
    inside = [False]  # the hook runs its module again: not again inside that

    def hook(name: str) -> Any:
        def compare(module: Any, args: tuple, output: Any) -> None:
            if inside[0] or not isinstance(output, torch.Tensor):
                return
            inside[0], original = True, module.weight.data
            try:
                module.weight.data = round_to_int8(original)  # made here: no second copy of every weight held
                changed = module(*(round_input_to_uint8(a) if inputs_too else a for a in args))
            finally:
                module.weight.data, inside[0] = original, False
            errors[name] += float((changed.float() - output.float()).pow(2).sum())
            norms[name] += float(output.float().pow(2).sum())

        return compare

    weighted = [name for name in names if isinstance(getattr(modules.get(name), "weight", None), torch.Tensor)]
    handles = [modules[name].register_forward_hook(hook(name)) for name in weighted]
    try:
        with torch.inference_mode():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    ratios = {name: errors[name] / norms[name] if name in weighted and norms[name] > 0 else None for name in names}
    return {name: r if r is not None and math.isfinite(r) else None for name, r in ratios.items()}  # NaN: unscored

