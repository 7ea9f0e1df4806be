"""Lower floating-point precision: the weights and the computation in fp16 or bf16.

The model is converted whole and wrapped so that it still takes and returns float32 tensors
(token ids pass through untouched): callers and the accuracy check see no difference.
On this project's CPU (AVX-512 BF16, no AMX, when measured) both ran slower than fp32 for MiniLM,
ResNet-20 and the MLP: they pay on GPUs and on CPUs with AMX. Decoding is another matter: it reads
every weight per token, and half the bytes won there (SmolLM2, an AVX2-only machine: 26 ms per
token in bf16 and 25 ms in fp16 against 71 ms in fp32, eager).
"""

from __future__ import annotations

from typing import Any

from suite.compress.base import CompressContext, MethodSpec
from suite.config.params import Params


class PrecisionParams(Params):
    pass


def cast_model(module: Any, dtype_name: str, context: CompressContext) -> tuple[Any, dict]:
    import torch

    from suite.compress.wrappers import CastInputs

    dtype = getattr(torch, dtype_name)
    notes = {"notes": [f"weights and activations in {dtype_name}"]}
    if context.task == "generate":  # token ids in, logits out: suite.lm reads them as float32
        return module.to(dtype), notes
    return CastInputs(module.to(dtype), dtype), notes


def apply_fp16(module: Any, params: PrecisionParams, context: CompressContext) -> tuple[Any, dict]:
    return cast_model(module, "float16", context)


def apply_bf16(module: Any, params: PrecisionParams, context: CompressContext) -> tuple[Any, dict]:
    return cast_model(module, "bfloat16", context)


FP16 = MethodSpec("fp16 weights and compute (for GPUs; slow on CPUs without native fp16)", PrecisionParams, apply_fp16,
                  tasks=("classify", "generate"))
BF16 = MethodSpec("bf16 weights and compute (for GPUs and CPUs with AMX)",
                  PrecisionParams, apply_bf16, makes="torch_only",
                  tasks=("classify", "generate"))  # ONNX Runtime has no bf16 convolution
