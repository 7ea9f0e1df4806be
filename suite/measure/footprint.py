"""Size and memory: parameter count, serialized size, peak resident memory."""

from __future__ import annotations

import io
import resource
import sys
from typing import Any


def parameter_count(module: Any) -> int:
    """Weights stored: parameters, or the quantized weights that replaced them."""
    if hasattr(module, "weight_count"):  # a model in another format (ONNX) counts its own
        return module.weight_count()
    return sum(t.numel() for t in weight_tensors(module))


def weight_tensors(module: Any) -> list[Any]:
    """Parameters, or the quantized weights that replaced them (packed in torch's quantized
    modules, or folded into a graph); not normalisation statistics or quantization scales."""
    import torch

    if isinstance(module, torch.fx.GraphModule):
        return [t for t in stored_tensors(module).values() if t.dim() > 1 or t.dtype == torch.int8]
    return [t for layer in module.modules() for t in own_weights(layer)]


def own_weights(layer: Any) -> list[Any]:
    """The weights one layer holds itself, not those of its sub-layers."""
    import torch

    own = list(layer.parameters(recurse=False))
    if hasattr(layer, "_all_weight_values"):  # torch's dynamic quantized LSTM / GRU
        return own + list(layer.get_weight().values()) + [b for b in layer.get_bias().values() if b is not None]
    for name in ("weight", "bias"):  # torch's quantized Linear / Conv: weight() and bias() methods
        getter = getattr(layer, name, None)
        if callable(getter) and not isinstance(getter, torch.Tensor):
            value = getter()
            own += [value] if isinstance(value, torch.Tensor) else []
    return own


def stored_tensors(module: Any) -> dict[str, Any]:
    """What a deployment stores: the state_dict, or for a traced graph (torch.fx, e.g. a PT2E
    quantized model) the tensors its graph reads, since its state_dict keeps unused originals
    and leaves out the folded int8 weights."""
    import torch

    if not isinstance(module, torch.fx.GraphModule):
        return module.state_dict()
    targets = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    found = {target: _attribute(module, target) for target in sorted(targets)}
    return {name: value for name, value in found.items() if isinstance(value, torch.Tensor)}


def _attribute(module: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def serialized_size_bytes(module: Any) -> int:
    """Bytes of the module's stored tensors as torch.save writes them (or of its file, for a
    model in another format)."""
    import torch

    if hasattr(module, "size_bytes"):
        return module.size_bytes()

    buffer = io.BytesIO()
    torch.save(stored_tensors(module), buffer)
    return buffer.tell()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def reset_gpu_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_memory(device: str) -> dict | None:
    """Peak GPU memory torch's allocator held since reset_gpu_peak (allocated: in tensors;
    reserved: in its cache). Memory other runtimes take from the driver (ONNX Runtime, TensorRT)
    is not seen here."""
    if not device.startswith("cuda"):
        return None
    import torch

    return {"peak_allocated_bytes": torch.cuda.max_memory_allocated(device),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(device), "seen_by": "torch.cuda allocator"}
