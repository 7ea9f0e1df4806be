"""ONNX Runtime's own int8 quantization, on the model exported to ONNX: dynamic (weights int8,
activations quantized on the fly) and static (QDQ: activations' ranges calibrated on training
batches). The result is an ONNX model, which the onnxruntime and openvino backends run (OpenVINO
reads QDQ models as int8). The record lists which ops hold int8 weights and which stayed in float.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import PositiveInt

from suite.compress.base import CompressContext, MethodSpec
from suite.compress.quantize import KeepFloat, calibration_batches, kept_out
from suite.config.params import Params

REQUIRES = ("onnxruntime", "onnx", "onnxscript")


class OrtDynamicParams(Params):
    per_channel: bool = False  # weights: one scale per output channel, else one per tensor
    preprocess: bool = True  # ONNX Runtime's quant_pre_process first (graph optimisation, shapes)
    # No keep_float: quantize_dynamic quantized an MLP's excluded Gemm node all the same (tested).


class OrtStaticParams(Params):
    calibration_batches: PositiveInt = 16
    calibration_batch_size: PositiveInt = 32
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    # uint8 activations with int8 weights is the x86 (VNNI) fast path; int8 both suits GPUs.
    activation_type: Literal["uint8", "int8"] = "uint8"
    preprocess: bool = True
    keep_float: KeepFloat = ()


def apply_dynamic(module: Any, params: OrtDynamicParams, context: CompressContext) -> tuple[Any, dict]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, notes = _prepared(module, context, params.preprocess)

    def make(path: Any) -> None:
        with quiet_root_logger():
            quantize_dynamic(str(source.path), str(path), weight_type=QuantType.QInt8, per_channel=params.per_channel)

    result = source.derive("int8_dynamic.onnx", "onnxruntime quantize_dynamic (weights int8)",
                           params.model_dump(mode="json"), make)
    return result, {"notes": notes + [f"onnxruntime.quantization.quantize_dynamic, per_channel={params.per_channel}"]}


def apply_static(module: Any, params: OrtStaticParams, context: CompressContext) -> tuple[Any, dict]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    source, notes = _prepared(module, context, params.preprocess)
    quantized_layers = kept_out(quantizable_nodes(source), params.keep_float)
    sized = params.model_copy(update={"calibration_batch_size": source.batch}) if source.batch else params  # a fixed batch axis
    batches = [b.numpy() for b in calibration_batches(context.data, sized)[:context.max_batches]  # --quick: fewer
               if not source.batch or len(b) == source.batch]
    activations = QuantType.QUInt8 if params.activation_type == "uint8" else QuantType.QInt8
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[params.calibration_method]

    def make(path: Any) -> None:
        try:
            with quiet_root_logger():  # per-channel warns through the root logger for every 1-D weight it skips
                quantize_static(str(source.path), str(path), BatchReader(batches, source.input_name),
                                quant_format=QuantFormat.QDQ, activation_type=activations, weight_type=QuantType.QInt8,
                                per_channel=params.per_channel, calibrate_method=method,
                                nodes_to_exclude=list(params.keep_float))
        except (AssertionError, ValueError) as exc:  # "scale issue": a range from NaN or infinity
            refuse_non_finite(source, batches, exc)
            raise

    calibration = hashlib.sha256(b"".join(b.tobytes() for b in batches)).hexdigest()
    result = source.derive(file_name("int8_static", params.keep_float), "onnxruntime quantize_static (QDQ)",
                           {**params.model_dump(mode="json"), "calibration": calibration}, make)
    return result, {"notes": notes + [f"calibrated ({params.calibration_method}) on {len(batches)} training batches "
                                      f"of up to {params.calibration_batch_size}"], "quantized_layers": quantized_layers}


def refuse_non_finite(source: Any, batches: list[Any], exc: Exception) -> None:
    """A one-line error where the model's outputs on the calibration batches are not all finite:
    ranges of NaN or infinity give no scale (ONNX Runtime asserts "scale issue")."""
    import numpy as np
    import onnxruntime as ort

    from suite.errors import SuiteError, first_line

    session = ort.InferenceSession(str(source.path), providers=["CPUExecutionProvider"])
    bad = sum(any(np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all()
                  for out in session.run(None, {source.input_name: batch})) for batch in batches)
    if bad:
        raise SuiteError(f"ort_int8_static: calibration saw non-finite outputs (NaN or infinity) in {bad} of "
                         f"{len(batches)} training batches: no int8 range can be taken from them (ONNX Runtime: "
                         f"{type(exc).__name__}: {first_line(exc, 80)})") from None


QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "LSTM", "GRU")


def quantizable_nodes(source: Any) -> list[str]:
    """The names of the nodes ONNX Runtime's quantizers can quantize (and so leave in float)."""
    return [node.name for node in source.load().graph.node if node.op_type in QUANTIZABLE_OPS and node.name]


def file_name(stem: str, keep_float: tuple[str, ...]) -> str:
    """A file of its own for each set of layers left in float (a search builds many)."""
    if not keep_float:
        return f"{stem}.onnx"
    return f"{stem}-float{len(keep_float)}-{hashlib.sha256(json.dumps(sorted(keep_float)).encode()).hexdigest()[:8]}.onnx"


def _prepared(module: Any, context: CompressContext, preprocess: bool) -> tuple[Any, list[str]]:
    """The model in ONNX, after ONNX Runtime's pre-processing when asked."""
    from suite.formats.onnx_model import to_onnx

    exported = to_onnx(module, context.data.train.x[:1])
    took = f" in {exported.export_s:.1f} s" if exported.export_s else ""  # 0: copied from the cache (its note says)
    exported_by = [] if exported.exporter == "file" else [f"exported to ONNX with torch's {exported.exporter} exporter{took}"]
    notes = [*exported_by, *exported.notes]
    if exported.exporter == "file" and needs_own_copy(exported.path):
        exported = exported.derive("self-contained.onnx", "external data inlined, unnamed nodes named", {},
                                   lambda path: self_contained(exported.path, path))
    if not preprocess:
        return exported, notes
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Symbolic shape inference fails on the dynamo exporter's graphs; ONNX's own inference is kept.
    result = exported.derive("preprocessed.onnx", "onnxruntime quant_pre_process", {"skip_symbolic_shape": True},
                             lambda path: quant_pre_process(str(exported.path), str(path), skip_symbolic_shape=True))
    return result, notes + ["onnxruntime quant_pre_process (skip_symbolic_shape)"]


def needs_own_copy(path: Any) -> bool:
    """Whether a user's file has external data or unnamed nodes (self_contained mends both), from one read."""
    from suite.formats.onnx_model import external_files, read_proto

    proto = read_proto(path)
    return bool(external_files(path, proto)) or any(not node.name for node in proto.graph.node)


def self_contained(source: Any, path: Any) -> None:
    """`source` in one file at `path`: its external data read in (ONNX Runtime 1.32's quantizers
    lose external data on the way: seen), and its unnamed nodes named by type and position
    (MatMul_3) so that keep_float, and so a search, can name them."""
    import onnx

    from suite.errors import SuiteError
    from suite.formats.onnx_model import PROTOBUF_LIMIT

    proto = onnx.load(str(source))
    if proto.ByteSize() >= PROTOBUF_LIMIT:
        raise SuiteError(f"{source}: ONNX Runtime's quantizers need the model in one file, and with its "
                         "external data it passes protobuf's 2 GiB limit")
    taken = {node.name for node in proto.graph.node}
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    onnx.save(proto, str(path))


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class BatchReader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input arrays."""

    def __init__(self, batches: list[Any], input_name: str):
        self.batches, self.input_name = iter(batches), input_name

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:  # part of the protocol; one pass is all quantize_static needs
        pass


ORT_INT8_DYNAMIC = MethodSpec(
    description="ONNX Runtime dynamic int8 on the ONNX export (weights int8; for onnxruntime / openvino)",
    Params=OrtDynamicParams, apply=apply_dynamic, requires=REQUIRES, takes=("torch", "onnx"), makes="onnx_int8", extra="onnx")
ORT_INT8_STATIC = MethodSpec(
    description="ONNX Runtime static int8 (QDQ, calibrated) on the ONNX export (for onnxruntime / openvino)",
    Params=OrtStaticParams, apply=apply_static, requires=REQUIRES, takes=("torch", "onnx"), makes="onnx_int8", extra="onnx")
