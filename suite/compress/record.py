"""What a compressed model is made of: size, weights, sparsity, and a per-layer table.
"Weights" are as measure.footprint counts them: parameters or the quantized weights that
replaced them, not normalisation statistics or quantization scales."""

from __future__ import annotations

from typing import Any

from suite.measure import footprint as sizes

# Ops worth a row in a graph's table: those that hold weights, and attention, which has none
# but often stays in float.
TABLE_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "embedding", "scaled_dot_product")


def footprint(module: Any) -> dict:
    if hasattr(module, "footprint"):  # a model in another format (ONNX) measures itself
        return module.footprint()
    weights = [plain(t) for t in sizes.weight_tensors(module)]
    total = sum(t.numel() for t in weights)
    zeros = sum(int((t == 0).sum()) for t in weights)
    return {"size_bytes": sizes.serialized_size_bytes(module), "weights": total,
            "sparsity": round(zeros / total, 6) if total else 0.0}


def plain(tensor: Any) -> Any:
    """A plain float tensor of the values a weight holds (torch quantized or torchao subclass)."""
    tensor = tensor.detach()
    return tensor.dequantize() if tensor.is_quantized or is_subclass(tensor) else tensor


def is_subclass(tensor: Any) -> bool:
    """A tensor subclass (torchao's Int8Tensor, ...): its dtype is the float it stands for."""
    import torch

    return type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(tensor, "dequantize")


def precision_of(tensor: Any) -> str:
    return type(tensor.detach()).__name__ if is_subclass(tensor.detach()) else str(tensor.dtype).removeprefix("torch.")


def layer_table(module: Any) -> list[dict]:
    """One row per layer that holds weights: name, type, precision, weights, sparsity."""
    import torch

    if hasattr(module, "layer_table"):  # a model in another format (ONNX) describes itself
        return module.layer_table()
    if isinstance(module, torch.fx.GraphModule):
        return graph_layer_table(module)
    rows = []
    for name, layer in module.named_modules():
        own = sizes.own_weights(layer)
        if own:
            rows.append(layer_row(name, type(layer).__name__, own))
    return rows


def layer_row(name: str, kind: str, tensors: list[Any]) -> dict:
    weight = max(tensors, key=lambda t: t.numel())
    return {"layer": name or "(model)", "type": kind, "precision": precision_of(weight),
            "weights": sum(t.numel() for t in tensors), "sparsity": round(float((plain(weight) == 0).float().mean()), 4)}


def graph_layer_table(module: Any) -> list[dict]:
    """For a traced graph (PT2E): each convolution, matrix product, embedding and attention, its
    weight's precision and whether its input arrives quantized; ops that stayed in float say so."""
    rows = []
    for node in module.graph.nodes:
        op = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        if node.op != "call_function" or not op.startswith(TABLE_OPS) or len(node.args) < 2:
            continue
        data, weight = (node.args[1], node.args[0]) if op == "embedding" else node.args[:2]
        rows.append({"layer": module_path(node), "type": op, "precision": "int8" if _dequantized(weight) else "float",
                     "input": "ids" if op == "embedding" else "int8" if _dequantized(data) else "float"})
    return rows


def module_path(node: Any) -> str:
    stack = list(node.meta.get("nn_module_stack", {}).values())
    return stack[-1][0] if stack else node.name


def _dequantized(arg: Any) -> bool:
    return "dequantize" in str(getattr(arg, "target", ""))
