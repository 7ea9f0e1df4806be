"""Integer quantization: dynamic int8 (torch.ao), static int8 through PT2E (torchao's x86 inductor
quantizer), torchao's weight-only int8 / int4 / int1-8 (intx) and its int8 dynamic-activation
int8-weight config.

Static int8 and torchao's configs make a graph that is fast only once compiled by inductor
(backend `compile`); run eagerly, the quantize/dequantize steps it adds make it slower than fp32.
The record says which layers became int8 and which stayed in float.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, PositiveInt

from suite.compress.base import CompressContext, MethodSpec, NotApplicable
from suite.config.params import Params

FLOAT_ACTIVATIONS = "Linear weights only, activations stay in float"
NEEDS_COMPILE = "its int8 kernels run only once compiled by inductor: use backend 'compile' (eager runs it slower than fp32)"


# Layers (module names, as the record's layer table and quantized_layers name them) left in float:
# what an accuracy-aware search (suite.build.search, layer_fallback) sets, or a user by hand.
KeepFloat = tuple[str, ...]


class DynamicParams(Params):
    layers: tuple[Literal["Linear", "LSTM", "GRU"], ...] = ("Linear", "LSTM", "GRU")
    keep_float: KeepFloat = ()


class StaticParams(Params):
    calibration_batches: PositiveInt = 16
    calibration_batch_size: PositiveInt = 32
    activation_observer: Literal["histogram", "minmax", "moving_average"] = "histogram"
    per_channel: bool = True  # weights: one scale per output channel, else one per tensor
    keep_float: KeepFloat = ()


class Int8WeightOnlyParams(Params):
    keep_float: KeepFloat = ()


class Int4WeightOnlyParams(Params):
    group_size: Literal[32, 64, 128, 256] = 128  # weights sharing one scale
    keep_float: KeepFloat = ()


class IntxWeightOnlyParams(Params):
    bits: int = Field(4, ge=1, le=8)
    group_size: Literal[0, 32, 64, 128, 256] = 64  # weights sharing one scale; 0: one per output channel
    keep_float: KeepFloat = ()


class Int8DynamicActivationParams(Params):
    keep_float: KeepFloat = ()


def apply_dynamic(module: Any, params: DynamicParams, context: CompressContext) -> tuple[Any, dict]:
    import torch

    kinds = {getattr(torch.nn, name) for name in params.layers}
    layers = [name for name, m in module.named_modules() if type(m) in kinds]
    if not layers:
        raise NotApplicable(f"the model has no {' / '.join(params.layers)} layer to quantize")
    quantized_layers = kept_out(layers, params.keep_float)
    spec = {name: torch.ao.quantization.default_dynamic_qconfig for name in quantized_layers}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = torch.ao.quantization.quantize_dynamic(module.eval(), spec, dtype=torch.qint8)
    return quantized, {"notes": ["torch.ao.quantization.quantize_dynamic"] + deprecations(caught),
                       "quantized_layers": quantized_layers}


def kept_out(layers: list[str], keep_float: tuple[str, ...]) -> list[str]:
    """`layers` less those `keep_float` names; a name that is no such layer is an error."""
    unknown = [name for name in keep_float if name not in layers]
    if unknown:
        from suite.errors import quote

        shown = ", ".join(layers[:12]) + (f", ... ({len(layers)} in all)" if len(layers) > 12 else "")
        raise NotApplicable(f"keep_float: {quote(unknown[0])} is not a layer it quantizes (those are: {shown})")
    return [name for name in layers if name not in keep_float]


def deprecations(caught: list) -> list[str]:
    """The distinct deprecation warnings an API raised, first line each, for the record."""
    lines = {str(w.message).splitlines()[0] for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))}
    return [f"deprecation warning: {line}" for line in sorted(lines)]


def apply_static(module: Any, params: StaticParams, context: CompressContext) -> tuple[Any, dict]:
    import torch
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    batches = calibration_batches(context.data, params)[:context.max_batches]  # --quick: fewer
    layers = [name for name, m in module.named_modules() if isinstance(m, static_layers())]
    quantized_layers = kept_out(layers, params.keep_float)
    exported = export_with_dynamic_batch(module.eval(), batches[0])
    quantizer = x86_quantizer(params)
    for name in params.keep_float:
        quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for batch in batches:
            prepared(batch)
    converted = convert_pt2e(prepared)
    allow_exported_model_train_eval(converted)  # so that backends may call .eval() as on any model
    return converted, {"notes": [f"calibrated on {len(batches)} training batches of up to {params.calibration_batch_size}",
                                 NEEDS_COMPILE], "quantized_layers": quantized_layers}


def static_layers() -> tuple:
    import torch

    return (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)


def calibration_batches(data: Any, params: Any) -> list[Any]:
    """Up to `params.calibration_batches` training batches of `params.calibration_batch_size`."""
    x = data.train.x
    size = params.calibration_batch_size
    return [x[i:i + size] for i in range(0, min(len(x), size * params.calibration_batches), size)]


def export_with_dynamic_batch(module: Any, example: Any) -> Any:
    import torch

    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False).module()
    except Exception as exc:  # export failures come in many types; the message is what helps
        raise NotApplicable(f"torch.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def x86_quantizer(params: StaticParams) -> Any:
    """X86InductorQuantizer's default config (uint8 activations, int8 symmetric weights) with the
    observers the params choose."""
    from dataclasses import replace

    from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    observer = {"histogram": HistogramObserver, "minmax": MinMaxObserver,
                "moving_average": MovingAverageMinMaxObserver}[params.activation_observer]
    config = xiq.get_default_x86_inductor_quantization_config()
    activation = replace(config.input_activation, observer_or_fake_quant_ctr=observer.with_args(eps=2**-12))
    weight = config.weight if params.per_channel else per_tensor_weight(config.weight)
    config = replace(config, input_activation=activation, output_activation=activation, weight=weight)
    return xiq.X86InductorQuantizer().set_global(config)


def per_tensor_weight(spec: Any) -> Any:
    from dataclasses import replace

    import torch
    from torchao.quantization.pt2e import MinMaxObserver

    return replace(spec, qscheme=torch.per_tensor_symmetric, ch_axis=None,
                   observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))


def apply_weight_only(module: Any, config: Any, label: str, keep_float: KeepFloat,
                      group_size: int = 0) -> tuple[Any, dict]:
    """torchao's config on every Linear (with `group_size`: those whose input width it divides)
    but those named in `keep_float`."""
    import torch
    from torchao.quantization import quantize_

    linears = [(name, m) for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    fits = [name for name, m in linears if not group_size or m.in_features % group_size == 0]
    if not fits:
        raise NotApplicable("the model has no Linear layer (torchao's weight-only configs quantize Linear weights)"
                            if not linears else f"no Linear layer's input width is a multiple of group_size {group_size}")
    chosen = set(kept_out(fits, keep_float))
    quantize_(module.eval(), config, filter_fn=lambda m, fqn: fqn in chosen)
    notes = [f"torchao quantize_ {label}", NEEDS_COMPILE]
    if len(fits) < len(linears):
        notes.append(f"{len(linears) - len(fits)} of {len(linears)} Linear layers stay in float: their input width "
                     f"is not a multiple of group_size {group_size}")
    return module, {"notes": notes, "quantized_layers": [name for name in fits if name in chosen]}


def apply_int8_weight_only(module: Any, params: Int8WeightOnlyParams, context: CompressContext) -> tuple[Any, dict]:
    from torchao.quantization import Int8WeightOnlyConfig

    return apply_weight_only(module, Int8WeightOnlyConfig(), f"Int8WeightOnlyConfig: {FLOAT_ACTIVATIONS}", params.keep_float)


def apply_int4_weight_only(module: Any, params: Int4WeightOnlyParams, context: CompressContext) -> tuple[Any, dict]:
    from torchao.quantization import Int4WeightOnlyConfig

    return apply_weight_only(module, Int4WeightOnlyConfig(group_size=params.group_size),
                             f"Int4WeightOnlyConfig: {FLOAT_ACTIVATIONS}", params.keep_float, params.group_size)


def apply_intx_weight_only(module: Any, params: IntxWeightOnlyParams, context: CompressContext) -> tuple[Any, dict]:
    import torch
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    granularity = PerGroup(params.group_size) if params.group_size else PerAxis(0)
    config = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{params.bits}"), granularity=granularity)
    module, record = apply_weight_only(module, config, f"IntxWeightOnlyConfig int{params.bits}: {FLOAT_ACTIVATIONS}",
                                       params.keep_float, params.group_size)
    # Measured here (torchao 0.18, one 2048x8192 Linear, batch 1, compiled, bf16): 26-30 ms against
    # 4.8 ms in fp32 eager: the weights are stored unpacked in int8 and de-quantized whole each call.
    record["notes"].append("int1-int7 values are stored one per int8 byte and de-quantized each call (no packed "
                           "CPU kernel in this torchao without its C++ kernel library): smaller figures of quality, "
                           "not of speed")
    return module, record


def apply_int8_dynamic_activation(module: Any, params: Int8DynamicActivationParams,
                                  context: CompressContext) -> tuple[Any, dict]:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return apply_weight_only(module, Int8DynamicActivationInt8WeightConfig(),
                             "Int8DynamicActivationInt8WeightConfig: Linear weights in int8, activations quantized "
                             "per token at run time", params.keep_float)


def int4_available(device: str) -> str | None:
    import importlib.util

    if device != "cuda":
        # torchao 0.18 on CPU: formats plain and preshuffled import mslk (CUDA only on PyPI),
        # tile_packed_to_4d calls CUDA, plain_int32 has no CPU path, opaque is gone.
        return ("torchao's int4 weight-only kernels need CUDA (the mslk package, or tile packing) in this torchao: "
                "on CPU use intx_weight_only (4-bit values stored in int8)")
    if importlib.util.find_spec("mslk") is None:
        return "torchao's int4 weight-only kernels need the mslk package: pip install mslk-cuda"
    return None


# torchao's quantized tensor subclasses: after a bf16 / fp16 cast too; ONNX export cannot take them.
TORCHAO_TENSORS = {"requires": ("torchao",), "tasks": ("classify", "generate"), "takes": ("torch", "torch_only"),
                   "makes": "torch_only"}
INT8_DYNAMIC = MethodSpec("int8 weights, activations quantized at run time (Linear, LSTM, GRU; torch.ao)",
                          DynamicParams, apply_dynamic,
                          # ONNX cannot export quantized::linear_dynamic, and torch.compile breaks the graph at every
                          # such layer (its packed weights cannot be traced): MiniLM hit the recompile limit
                          makes="eager_only", tasks=("classify", "generate"))
INT8_STATIC = MethodSpec("post-training static int8, calibrated (PT2E, x86 inductor quantizer; fast under backend compile)",
                         StaticParams, apply_static, requires=("torchao",),
                         makes="torch_only")  # its ONNX export failed for MiniLM (quantized_decomposed ops)
INT8_WEIGHT_ONLY = MethodSpec("int8 Linear weights, float activations (torchao; fast under backend compile)",
                              Int8WeightOnlyParams, apply_int8_weight_only, **TORCHAO_TENSORS)
INTX_WEIGHT_ONLY = MethodSpec("1- to 8-bit Linear weights, grouped scales (torchao IntxWeightOnlyConfig; runs on CPU, "
                              "stored in int8)", IntxWeightOnlyParams, apply_intx_weight_only, **TORCHAO_TENSORS)
INT8_DYNAMIC_ACTIVATION = MethodSpec("int8 Linear weights and int8 activations quantized per token at run time "
                                     "(torchao; under backend compile)", Int8DynamicActivationParams,
                                     apply_int8_dynamic_activation, **TORCHAO_TENSORS)
INT4_WEIGHT_ONLY = MethodSpec("int4 Linear weights, grouped scales (torchao; CUDA with mslk)", Int4WeightOnlyParams,
                              apply_int4_weight_only, available=int4_available, **TORCHAO_TENSORS)
