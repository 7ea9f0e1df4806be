"""Pruning: unstructured magnitude pruning made permanent, structured channel pruning that really
shrinks the model (Torch-Pruning), and 2:4 semi-structured sparsity for NVIDIA GPUs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from suite.compress.base import CompressContext, MethodSpec, NotApplicable
from suite.config.params import Params

PRUNABLE = ("Linear", "Conv1d", "Conv2d")


class MagnitudeParams(Params):
    sparsity: float = Field(0.5, gt=0.0, lt=1.0)  # share of weights set to zero
    scope: Literal["global", "layer"] = "global"  # one threshold for all layers, or each layer to `sparsity`


class ChannelParams(Params):
    sparsity: float = Field(0.5, gt=0.0, lt=1.0)  # share of channels / neurons removed from each prunable layer
    importance: Literal["l1", "l2"] = "l2"  # norm that ranks channels (with their dependants)


class SemiStructuredParams(Params):
    pass


def prunable_weights(module: Any) -> list[tuple[Any, str]]:
    import torch

    kinds = tuple(getattr(torch.nn, name) for name in PRUNABLE)
    return [(m, "weight") for m in module.modules() if isinstance(m, kinds)]


def apply_magnitude(module: Any, params: MagnitudeParams, context: CompressContext) -> tuple[Any, dict]:
    from torch.nn.utils import prune

    targets = prunable_weights(module)
    if not targets:
        raise NotApplicable(f"the model has no {' / '.join(PRUNABLE)} layer to prune")
    if params.scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=params.sparsity)
    else:
        for layer, name in targets:
            prune.l1_unstructured(layer, name, amount=params.sparsity)
    for layer, name in targets:
        prune.remove(layer, name)  # the zeros become the weights themselves: no mask left behind
    return module, {"notes": ["zeros stored densely: smaller only once compressed, faster only with sparse kernels"]}


def apply_channel(module: Any, params: ChannelParams, context: CompressContext) -> tuple[Any, dict]:
    import torch_pruning as tp

    example = context.data.train.x[:2]
    importance = tp.importance.MagnitudeImportance(p=1 if params.importance == "l1" else 2)
    try:
        pruner = tp.pruner.MetaPruner(module.eval(), example, importance=importance, pruning_ratio=params.sparsity,
                                      ignored_layers=output_layers(module, context.data.num_classes))
        pruner.step()
    except Exception as exc:  # Torch-Pruning raises many kinds on graphs it cannot trace
        raise NotApplicable(f"Torch-Pruning could not prune this model: {type(exc).__name__}: {exc}") from None
    return module, {"notes": [f"Torch-Pruning {tp.__version__}: channels removed with their dependants"]}


def output_layers(module: Any, num_classes: int) -> list[Any]:
    """The layers that produce the class scores: their outputs must stay."""
    import torch

    return [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_classes]


def apply_semi_structured(module: Any, params: SemiStructuredParams, context: CompressContext) -> tuple[Any, dict]:
    """Keep the 2 largest of every 4 weights along each Linear's input, then store them as
    torch's semi-structured sparse tensors (sparse tensor-core kernels)."""
    import torch
    from torch.sparse import to_sparse_semi_structured

    module.to(context.device)  # the sparse layout is built on the GPU
    linears = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)]
    skipped = []
    for name, layer in linears:
        try:
            dense = two_of_four(layer.weight.detach())
            layer.weight = torch.nn.Parameter(to_sparse_semi_structured(dense), requires_grad=False)
        except (RuntimeError, ValueError) as exc:  # shapes or dtypes the kernels do not take
            skipped.append(f"{name or 'model'}: left dense ({str(exc).splitlines()[0]})")
    if len(skipped) == len(linears):
        raise NotApplicable("no Linear layer could be made 2:4 sparse: " + "; ".join(skipped[:3]))
    return module, {"notes": skipped}


def two_of_four(weight: Any) -> Any:
    """The weight with the 2 smallest-magnitude values of every group of 4 (along the input) zeroed."""
    groups = weight.reshape(-1, 4)
    keep = groups.abs().topk(2, dim=1).indices
    mask = groups.new_zeros(groups.shape, dtype=bool).scatter_(1, keep, True)
    return (groups * mask).reshape(weight.shape)


def semi_structured_available(device: str) -> str | None:
    if device != "cuda":
        return "2:4 semi-structured sparsity runs on NVIDIA GPUs only (sparse tensor cores); this variant runs on CPU"
    import torch

    major, _ = torch.cuda.get_device_capability()
    return None if major >= 8 else f"needs an Ampere or newer GPU (compute capability 8.0+), found {major}.x"


MAGNITUDE = MethodSpec("unstructured magnitude pruning (global or per layer), made permanent", MagnitudeParams,
                       apply_magnitude, tasks=("classify", "generate"))
CHANNEL = MethodSpec("structured pruning: removes channels / neurons with their dependants (Torch-Pruning)",
                     ChannelParams, apply_channel, requires=("torch_pruning",))
SEMI_STRUCTURED = MethodSpec("2:4 semi-structured sparsity of Linear weights (NVIDIA GPU, torch sparse kernels)",
                             SemiStructuredParams, apply_semi_structured, available=semi_structured_available,
                             tasks=("classify", "generate"))
