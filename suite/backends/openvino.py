"""OpenVINO: Intel's inference engine, the usual choice on CPUs. It reads the ONNX export (or the
int8 QDQ model an `ort_int8_static` step made: OpenVINO runs those in int8).

Precision is part of the variant: OpenVINO runs in bf16 on CPUs that have it unless told
INFERENCE_PRECISION_HINT f32, so the hint is always set, and the precisions the compiled model
really runs its convolutions and matrix products in are read back and recorded. An f32 variant
with any of them in a lower float precision fails rather than report bf16 numbers as fp32.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from pydantic import PositiveInt

from suite.backends.base import Backend
from suite.config.params import Params
from suite.registry import missing_extra

COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul", "RNNSeq", "RNNCell")
LOWER_FLOATS = ("bf16", "f16")


class OpenVinoParams(Params):
    device: Literal["CPU", "GPU"] = "CPU"
    precision: Literal["f32", "bf16", "f16"] = "f32"  # INFERENCE_PRECISION_HINT, checked after compiling
    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    threads: PositiveInt | None = None  # None: the scenario's measure.threads (else all cores)
    # True: one model compiled per input shape (as TensorRT builds one engine per shape);
    # False: one model with dynamic shapes.
    static_shapes: bool = True


class OpenVinoBackend(Backend):
    Params = OpenVinoParams
    description = "OpenVINO (CPU; reads the ONNX export, runs QDQ int8 models in int8)"
    takes = ("torch", "onnx", "onnx_int8")

    def __init__(self, params: OpenVinoParams):
        self.params = params
        self.onnx: Any = None
        self.compile_s = 0.0
        self.runtime_precisions: dict[str, int] = {}
        self.threads: int | None = None

    def available(self) -> str | None:
        missing = missing_extra(("openvino", "onnx", "onnxscript"), "openvino")
        if missing:
            return missing
        import openvino

        if self.params.device not in openvino.Core().available_devices:
            return f"OpenVINO sees no {self.params.device} device here"
        return None

    def version(self) -> str:
        import openvino

        return openvino.get_version()

    def describe(self) -> dict[str, Any]:
        return {"device": "cpu" if self.params.device == "CPU" else "gpu", "openvino_device": self.params.device,
                "precision_hint": self.params.precision, "performance_hint": self.params.performance_hint,
                "static_shapes": self.params.static_shapes, "compile_s": round(self.compile_s, 3),
                "runtime_precisions": self.runtime_precisions, **(self.onnx.describe() if self.onnx else {})}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        import openvino
        import torch

        from suite.formats.onnx_model import to_onnx

        self.onnx = to_onnx(model, example_inputs)
        self.threads = self.params.threads or torch.get_num_threads()
        core = openvino.Core()
        requests: dict[tuple, Any] = {}

        def run(inputs: Any) -> Any:
            key = inputs.shape if self.params.static_shapes else ()
            if key not in requests:
                requests[key] = self._compile(core, key).create_infer_request()
            try:  # free until it raises
                return requests[key].infer([inputs], share_inputs=True)[self.onnx.output_name]
            except Exception as exc:
                self.onnx.blame(exc, "OpenVINO", f"run it on a batch of {len(inputs)}")
                raise

        run(self.place(example_inputs))
        return run

    def _compile(self, core: Any, shape: tuple, extra: dict | None = None) -> Any:
        try:
            model = core.read_model(str(self.onnx.path))
            if shape:
                model.reshape({0: list(shape)})
            start = time.perf_counter()
            compiled = core.compile_model(model, self.params.device, {
                "INFERENCE_PRECISION_HINT": self.params.precision, "PERFORMANCE_HINT": self.params.performance_hint,
                "INFERENCE_NUM_THREADS": self.threads, **(extra or {})})
        except Exception as exc:
            self.onnx.blame(exc, "OpenVINO", f"compile it for shape {tuple(shape)}" if shape else "compile it")
            raise
        self.compile_s += time.perf_counter() - start
        self.runtime_precisions = runtime_precisions(compiled)
        lowered = sorted(set(self.runtime_precisions) & set(LOWER_FLOATS))
        if self.params.precision == "f32" and lowered:
            raise RuntimeError(f"OpenVINO compiled an f32 variant with layers in {', '.join(lowered)}")
        return compiled

    def profile_ops(self, run: Callable[[Any], Any], inputs: Any, calls: int) -> tuple[list, float, int]:
        """OpenVINO's performance counters (PERF_COUNT) on a model compiled again with the same
        settings for these inputs: each executed layer's time, by layer type and the precision
        its kernel ran in (from its implementation's name, e.g. brgconv_avx512_I8)."""
        import openvino

        from suite.measure.ops import Op

        compile_s, precisions = self.compile_s, self.runtime_precisions  # the variant's own, not this one's
        request = self._compile(openvino.Core(), inputs.shape if self.params.static_shapes else (),
                                {"PERF_COUNT": True}).create_infer_request()
        self.compile_s, self.runtime_precisions = compile_s, precisions
        for _ in range(2):
            request.infer([inputs], share_inputs=True)
        found = []  # an Op per layer run; suite.measure.ops.table adds them up
        wall = 0.0
        for _ in range(calls):
            start = time.perf_counter()
            request.infer([inputs], share_inputs=True)
            wall += time.perf_counter() - start
            for info in request.get_profiling_info():
                if str(info.status).endswith("EXECUTED") and not str(info.status).endswith("NOT_EXECUTED"):
                    precision = info.exec_type.rsplit("_", 1)[-1] if "_" in info.exec_type else None
                    found.append(Op(info.node_type, 1, info.real_time.total_seconds(), precision))
        return found, wall, calls

    def place(self, inputs: Any) -> Any:
        return inputs.numpy()

    def to_host(self, outputs: Any) -> Any:
        return outputs.copy()  # the request reuses its output buffer on the next call

    def synchronize(self) -> None:
        pass  # infer() returns when the results are ready


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """How many convolutions / matrix products the compiled model runs in each precision."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if str(info["layerType"].astype(str)) in COMPUTE_LAYERS:
            counts[str(info["runtimePrecision"].astype(str))] += 1
    return dict(sorted(counts.items()))
