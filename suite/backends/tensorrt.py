"""TensorRT on an NVIDIA GPU, by two routes:

- `onnx`: the ONNX export parsed by TensorRT's OnnxParser and built into an engine with the
  tensorrt Python API (one optimisation profile per input shape), fp32, fp16 or int8 (entropy
  calibration on training batches). Engines are cached on disk under a key of the model file,
  the settings, the TensorRT version and the GPU, so a second run does not rebuild them.
- `torch_tensorrt`: Torch-TensorRT's dynamo compiler (fp32, fp16), with its own engine cache.

NOT RUN BY THIS PROJECT'S CI: no machine it has can install TensorRT (PyPI carries only stubs
that fetch the libraries from NVIDIA's index). Tests that need an engine run wherever
`import tensorrt` works and a CUDA device is present.

The engine runs on torch's current CUDA stream, with inputs and outputs in torch CUDA tensors,
so its timing (CUDA events) has the same boundary as the eager and onnxruntime backends.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import PositiveInt

from suite.backends.base import Backend
from suite.config.params import Params
from suite.errors import SuiteError

# Builder flags each precision turns on (fp32 needs none). int8 keeps fp16 on for the layers
# that have no int8 kernel, as trtexec --int8 --fp16 does.
PRECISION_FLAGS = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}


class TensorRtParams(Params):
    route: Literal["onnx", "torch_tensorrt"] = "onnx"
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    workspace_mib: PositiveInt = 1024
    calibration_batches: PositiveInt = 16  # int8 (route onnx): training batches for the calibrator
    calibration_batch_size: PositiveInt = 32
    cache_dir: Path | None = None  # None: <user cache>/suite/tensorrt


class TensorRtBackend(Backend):
    Params = TensorRtParams
    description = "TensorRT on NVIDIA GPUs (ONNX -> engine, or Torch-TensorRT); not run by the project's CI"
    takes = ("torch", "onnx", "onnx_int8")

    def __init__(self, params: TensorRtParams):
        self.params = params
        self.onnx: Any = None
        self.build_s = 0.0
        self.cached_engines = 0
        self.calibration: Any = None  # the training inputs, for int8

    def available(self) -> str | None:
        module = "tensorrt" if self.params.route == "onnx" else "torch_tensorrt"
        if importlib.util.find_spec(module) is None:
            return (f"{module} is not installed (pip install -c constraints.txt '.[tensorrt]' on a CUDA machine; "
                    "TensorRT comes from NVIDIA's package index)")
        if self.params.route == "torch_tensorrt" and self.params.precision == "int8":
            return "int8 through Torch-TensorRT needs a model quantized with NVIDIA ModelOpt: use route 'onnx'"
        import torch

        return None if torch.cuda.is_available() else "TensorRT needs a CUDA device; none is available here"

    def version(self) -> str:
        import tensorrt

        return tensorrt.__version__

    def describe(self) -> dict[str, Any]:
        return {"device": "cuda", "route": self.params.route, "precision": self.params.precision,
                "build_s": round(self.build_s, 3), "cached_engines": self.cached_engines,
                **(self.onnx.describe() if self.onnx else {})}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        from suite.formats.onnx_model import OnnxModel, to_onnx

        self.calibration = train_inputs
        if self.params.route == "torch_tensorrt" and isinstance(model, OnnxModel):
            raise SuiteError("route torch_tensorrt compiles torch models, and this one is ONNX: use route 'onnx'")
        if self.params.route == "torch_tensorrt":
            return self._torch_tensorrt(model, example_inputs)
        self.onnx = to_onnx(model, example_inputs)
        engines: dict[tuple, Any] = {}

        def run(inputs: Any) -> Any:
            key = tuple(inputs.shape)
            if key not in engines:
                try:
                    engines[key] = EngineRunner(self._engine(inputs), self.onnx.output_name)
                except Exception as exc:
                    self.onnx.blame(exc, "TensorRT", f"build an engine of it for shape {key}")
                    raise
            return engines[key](inputs)

        return run

    def _engine(self, inputs: Any) -> bytes:
        """The serialized engine for this input shape: from the cache, or built and cached."""
        import tensorrt as trt
        import torch

        key = cache_key(self.onnx.digest().encode(), self.params.model_dump(mode="json", exclude={"cache_dir"}),
                        tuple(inputs.shape), str(inputs.dtype), trt.__version__, gpu_name(torch))
        path = (self.params.cache_dir or default_engine_dir()) / f"{key}.engine"
        if path.is_file():
            self.cached_engines += 1
            return path.read_bytes()
        start = time.perf_counter()
        engine = build_engine(self.onnx.path, tuple(inputs.shape), self.params, self.calibration)
        self.build_s += time.perf_counter() - start
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(engine)
        return engine

    def _torch_tensorrt(self, model: Any, example_inputs: Any) -> Callable[[Any], Any]:
        import torch
        import torch_tensorrt

        precisions = {torch.float32} | ({torch.float16} if self.params.precision == "fp16" else set())
        model.eval()
        example = example_inputs.cuda()
        start = time.perf_counter()
        compiled = torch_tensorrt.compile(
            model.cuda(), ir="dynamo", inputs=[example], enabled_precisions=precisions,
            workspace_size=self.params.workspace_mib * 2**20, cache_built_engines=True, reuse_cached_engines=True,
            engine_cache_dir=str(self.params.cache_dir or default_engine_dir()))
        self.build_s += time.perf_counter() - start

        @torch.inference_mode()
        def run(inputs: Any) -> Any:
            return compiled(inputs)

        return run

    def profile_ops(self, run: Callable[[Any], Any], inputs: Any, calls: int) -> tuple[list, float, int]:
        """TensorRT's layer profiler (IProfiler) on a second execution context of the engine for
        these inputs: each layer's time as TensorRT reports it (fused layers under their fused
        names); torch.profiler for the Torch-TensorRT route."""
        import tensorrt as trt
        import torch

        from suite.measure.ops import Op, torch_ops

        if self.params.route == "torch_tensorrt":
            return torch_ops(lambda: run(inputs), calls, self.synchronize)
        runner = EngineRunner(self._engine(inputs), self.onnx.output_name)
        found = []  # an Op per layer run; suite.measure.ops.table adds them up

        class LayerTimes(trt.IProfiler):
            def __init__(self) -> None:
                super().__init__()

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                found.append(Op(layer_name, 1, ms / 1e3))

        runner(inputs)  # warm-up, before the profiler is attached
        runner.context.profiler = LayerTimes()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            runner(inputs)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        return found, wall, calls

    def place(self, inputs: Any) -> Any:
        return inputs.cuda()

    def to_host(self, outputs: Any) -> Any:
        return getattr(outputs, "logits", outputs).float().cpu().numpy()

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()


def cache_key(model_bytes: bytes, settings: dict, shape: tuple, dtype: str, trt_version: str, gpu: str) -> str:
    """A digest of everything an engine depends on: change any of them and the engine is rebuilt."""
    digest = hashlib.sha256(model_bytes)
    digest.update(json.dumps([settings, list(shape), dtype, trt_version, gpu], sort_keys=True).encode())
    return digest.hexdigest()[:32]


def gpu_name(torch: Any) -> str:
    major, minor = torch.cuda.get_device_capability()
    return f"{torch.cuda.get_device_name()} sm_{major}{minor}"


def default_engine_dir() -> Path:
    from suite.build.weights import default_cache_dir

    return default_cache_dir() / "tensorrt"


def build_engine(onnx_path: Path, shape: tuple, params: TensorRtParams, calibration: Any) -> bytes:
    """Parse the ONNX file and build a serialized engine for one input shape."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # external data is read from next to the file
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, params.workspace_mib * 2**20)
    for flag in PRECISION_FLAGS[params.precision]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, shape, shape, shape)
    config.add_optimization_profile(profile)
    if params.precision == "int8":
        config.int8_calibrator = entropy_calibrator(calibration_batches(calibration, params, shape))
        config.set_calibration_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError("TensorRT failed to build the engine (its log above says why)")
    return bytes(engine)


def calibration_batches(inputs: Any, params: TensorRtParams, shape: tuple) -> list[Any]:
    """Training inputs cut into full batches of the engine's batch size (the calibrator needs a
    fixed size), at most `calibration_batches` of them, as contiguous numpy arrays."""
    import numpy as np

    if inputs is None:
        raise ValueError("int8 needs calibration inputs: the runner sets them from the training split")
    size = shape[0]
    count = min(params.calibration_batches, len(inputs) // size)
    if count == 0:
        raise ValueError(f"int8 calibration needs at least {size} training inputs, got {len(inputs)}")
    return [np.ascontiguousarray(inputs[i * size:(i + 1) * size].numpy()) for i in range(count)]


def entropy_calibrator(batches: list[Any]) -> Any:
    """TensorRT's IInt8EntropyCalibrator2 over the given batches (defined here: it subclasses a
    TensorRT class, so it exists only where TensorRT imports)."""
    import tensorrt as trt
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches, self.current = iter(batches), None

        def get_batch_size(self) -> int:
            return batches[0].shape[0]

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.current = torch.from_numpy(batch).cuda()  # kept alive until the next call
            return [self.current.data_ptr()]

        def read_calibration_cache(self) -> None:
            return None

        def write_calibration_cache(self, cache: bytes) -> None:
            pass

    return Calibrator()


class EngineRunner:
    """One engine and its execution context, run on torch's current stream with torch tensors.
    Every output gets a buffer (TensorRT needs an address for each); `output`'s is returned."""

    def __init__(self, serialized: bytes, output: str):
        import tensorrt as trt

        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        self.output = output if output in self.outputs else self.outputs[0]
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in self.outputs}

    def __call__(self, inputs: Any) -> Any:
        import torch

        self.context.set_input_shape(self.input, tuple(inputs.shape))
        self.context.set_tensor_address(self.input, inputs.contiguous().data_ptr())
        buffers = {}
        for name in self.outputs:
            buffers[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), device="cuda", dtype=self.dtypes[name])
            self.context.set_tensor_address(name, buffers[name].data_ptr())
        self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        return buffers[self.output]


def torch_dtype(trt: Any, dtype: Any) -> Any:
    """The torch dtype of a TensorRT tensor type (float32 for one this does not know)."""
    import torch

    known = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
             "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8}
    return next((t for name, t in known.items() if getattr(trt.DataType, name, None) == dtype), torch.float32)
