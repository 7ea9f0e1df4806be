"""Compression methods, applied in the order a variant lists them. One file per family
(quantize.py, precision.py, prune.py, finetune.py); one registration line per method."""

from suite.compress.base import CompressContext, MethodSpec, NotApplicable, compress
from suite.registry import METHODS

__all__ = ["CompressContext", "MethodSpec", "NotApplicable", "compress"]

METHODS.register("int8_dynamic", "suite.compress.quantize:INT8_DYNAMIC")
METHODS.register("int8_static", "suite.compress.quantize:INT8_STATIC")
METHODS.register("int8_weight_only", "suite.compress.quantize:INT8_WEIGHT_ONLY")
METHODS.register("int4_weight_only", "suite.compress.quantize:INT4_WEIGHT_ONLY")
METHODS.register("intx_weight_only", "suite.compress.quantize:INTX_WEIGHT_ONLY")
METHODS.register("int4_cpu", "suite.compress.int4_cpu:INT4_CPU")
METHODS.register("int8_dynamic_activation", "suite.compress.quantize:INT8_DYNAMIC_ACTIVATION")
METHODS.register("ort_int8_dynamic", "suite.compress.onnx_quantize:ORT_INT8_DYNAMIC")
METHODS.register("ort_int8_static", "suite.compress.onnx_quantize:ORT_INT8_STATIC")
METHODS.register("fp16", "suite.compress.precision:FP16")
METHODS.register("bf16", "suite.compress.precision:BF16")
METHODS.register("magnitude", "suite.compress.prune:MAGNITUDE")
METHODS.register("channel", "suite.compress.prune:CHANNEL")
METHODS.register("semi_structured_2_4", "suite.compress.prune:SEMI_STRUCTURED")
METHODS.register("finetune", "suite.compress.finetune:FINETUNE")
