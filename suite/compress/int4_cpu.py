"""int4 Linear weights packed for torch's own CPU kernel (`aten._weight_int4pack_mm_for_cpu`, the
kernel torchao's CPU int4 layout once called): two weights per byte, a scale and a zero point
per group of `group_size` input weights (asymmetric: the group's minimum and maximum span the 16
levels), the products in bf16 (the kernel's fast path; float32 activations are cast). torchao
0.18's own int4 weight-only config has no CPU path (see suite.compress.quantize.int4_available:
its packing formats need CUDA or the mslk library), so suite packs the weights itself.

The kernel needs a layer's output width to be a multiple of 16 and its input width a multiple
of `group_size`; other Linear layers stay in float (the record names them). A Linear tied to an
embedding table (a tied output head) gets its own packed copy; the table stays in float.
"""

from __future__ import annotations

from typing import Any, Literal

from suite.compress.base import CompressContext, MethodSpec, NotApplicable
from suite.compress.quantize import KeepFloat, kept_out
from suite.config.params import Params


class Int4CpuParams(Params):
    group_size: Literal[32, 64, 128, 256] = 32  # input weights sharing one scale and zero point
    keep_float: KeepFloat = ()


def apply_int4_cpu(module: Any, params: Int4CpuParams, context: CompressContext) -> tuple[Any, dict]:
    import torch

    linears = [(name, m) for name, m in module.named_modules() if type(m) is torch.nn.Linear]
    fits = [name for name, m in linears if m.out_features % 16 == 0 and m.in_features % params.group_size == 0]
    if not fits:
        raise NotApplicable("the model has no Linear layer" if not linears else
                            f"no Linear layer has an output width that is a multiple of 16 and an input width that "
                            f"is a multiple of group_size {params.group_size}")
    chosen = kept_out(fits, params.keep_float)
    from suite.compress.wrappers import PackedInt4Linear

    module = module.eval()
    for name in chosen:
        parent, _, leaf = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, leaf, PackedInt4Linear(getattr(owner, leaf), params.group_size))
    notes = ["int4 weights packed for torch's CPU kernel aten._weight_int4pack_mm_for_cpu (asymmetric, a scale and "
             f"zero point per {params.group_size} weights); products with bf16 activations"]
    if len(fits) < len(linears):
        notes.append(f"{len(linears) - len(fits)} of {len(linears)} Linear layers stay in float: the kernel needs an "
                     f"output width that is a multiple of 16 and an input width that is a multiple of group_size")
    return module, {"notes": notes, "quantized_layers": list(chosen)}


def cpu_only(device: str) -> str | None:
    return None if device == "cpu" else "torch's packed int4 kernel (aten._weight_int4pack_mm_for_cpu) runs on CPU only"


INT4_CPU = MethodSpec("int4 Linear weights packed for torch's own CPU kernel, grouped scales and zero points "
                      "(eager and compile)", Int4CpuParams, apply_int4_cpu, available=cpu_only, tasks=("classify", "generate"),
                      takes=("torch", "torch_only"), makes="torch_only")
