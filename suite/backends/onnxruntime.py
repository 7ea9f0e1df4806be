"""ONNX Runtime: the model exported to ONNX (or already ONNX, from an `ort_int8_*` step) and run
by an InferenceSession, with the CPU provider or the CUDA provider when present.

On CUDA the inputs are bound on the device (IO binding) and ONNX Runtime runs on torch's current
stream, so the timer measures the model, not host-device copies, exactly as for torch on CUDA;
the copies are timed on purpose in the end-to-end figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import PositiveInt

from suite.backends.base import Backend
from suite.config.params import Params
from suite.registry import missing_extra

OPTIMIZATION = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeParams(Params):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when its provider can run, else CPU
    threads: PositiveInt | None = None  # intra-op threads; None: the scenario's measure.threads (else all cores)
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = "all"


class OnnxRuntimeBackend(Backend):
    Params = OnnxRuntimeParams
    description = "ONNX Runtime (CPU provider; CUDA provider with IO binding when present)"
    takes = ("torch", "onnx", "onnx_int8")

    def __init__(self, params: OnnxRuntimeParams):
        self.params = params
        self.onnx: Any = None
        self.session_s: float | None = None
        self.session: Any = None

    def available(self) -> str | None:
        missing = missing_extra(("onnxruntime", "onnx", "onnxscript"), "onnx")
        if missing:
            return missing
        if self.params.device == "cuda" and not cuda_provider():
            return "device 'cuda' asked for, but ONNX Runtime's CUDA provider or a CUDA device is missing"
        return None

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    @cached_property
    def device(self) -> str:
        if self.params.device == "auto":
            return "cuda" if cuda_provider() else "cpu"
        return self.params.device

    def describe(self) -> dict[str, Any]:
        providers = self.session.get_providers() if self.session else None
        return {"device": self.device, "providers": providers, "graph_optimization": self.params.graph_optimization,
                "session_s": self.session_s, **(self.onnx.describe() if self.onnx else {})}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        import torch

        from suite.formats.onnx_model import to_onnx

        self.onnx = to_onnx(model, example_inputs)
        start = time.perf_counter()
        self.session = self._session(torch.get_num_threads())
        self.session_s = round(time.perf_counter() - start, 3)
        return self._run_on_device() if self.device == "cuda" else self._run_on_host()

    def _session(self, default_threads: int, profile_prefix: str | None = None) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if profile_prefix is not None:
            options.enable_profiling, options.profile_file_prefix = True, profile_prefix
        options.intra_op_num_threads = self.params.threads or default_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION[self.params.graph_optimization])
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
        try:
            session = ort.InferenceSession(str(self.onnx.path), options, providers=self._providers())
        except Exception as exc:
            self.onnx.blame(exc, "ONNX Runtime", "load it")
            raise
        if self.device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"ONNX Runtime fell back to {session.get_providers()} instead of running on CUDA")
        return session

    def _providers(self) -> list:
        if self.device == "cpu":
            return ["CPUExecutionProvider"]
        import torch

        # Torch's stream: a CUDA event or synchronize around a call then covers ONNX Runtime's work.
        stream = str(torch.cuda.current_stream().cuda_stream)
        return [("CUDAExecutionProvider", {"device_id": 0, "user_compute_stream": stream}), "CPUExecutionProvider"]

    def _run_on_host(self) -> Callable[[Any], Any]:
        session, feed, fetch, onnx = self.session, self.onnx.input_name, [self.onnx.output_name], self.onnx

        def run(inputs: Any) -> Any:
            try:  # free until it raises (Python 3.11's exceptions cost nothing on the way through)
                return session.run(fetch, {feed: inputs})[0]
            except Exception as exc:
                onnx.blame(exc, "ONNX Runtime", f"run it on a batch of {len(inputs)}")
                raise

        return run

    def _run_on_device(self) -> Callable[[Any], Any]:
        session, binding = self.session, self.session.io_binding()
        feed, fetch = self.onnx.input_name, self.onnx.output_name

        def run(inputs: Any) -> Any:
            binding.bind_ortvalue_input(feed, inputs)
            binding.bind_output(fetch, "cuda")
            try:
                session.run_with_iobinding(binding)
            except Exception as exc:
                self.onnx.blame(exc, "ONNX Runtime", f"run it on a batch of {inputs.shape()[0]}")
                raise
            return binding.get_outputs()[0]

        return run

    def profile_ops(self, run: Callable[[Any], Any], inputs: Any, calls: int) -> tuple[list, float, int]:
        """ONNX Runtime's own session profiling (enable_profiling), on a second session of the same
        graph and settings: every node's kernel time, by operator type and input precision."""
        import json
        import tempfile

        from suite.measure.ops import Op

        with tempfile.TemporaryDirectory(prefix="suite-ort-profile-") as folder:
            session = self._session(self.session.get_session_options().intra_op_num_threads,
                                    profile_prefix=str(Path(folder) / "ort"))
            feed, fetch = {self.onnx.input_name: inputs if self.device == "cpu" else inputs.numpy()}, [self.onnx.output_name]
            for _ in range(2):
                session.run(fetch, feed)
            start = time.perf_counter()
            for _ in range(calls):
                session.run(fetch, feed)
            wall = time.perf_counter() - start
            events = json.loads(Path(session.end_profiling()).read_text())
        runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        timed_from = runs[2] if len(runs) > 2 else 0  # the two warm-up runs are in the profile too
        found = []  # an Op per kernel run; suite.measure.ops.table adds them up
        for event in events:
            args = event.get("args") or {}
            if (event.get("cat") != "Node" or "op_name" not in args or event.get("ts", 0) < timed_from
                    or not event.get("name", "").endswith("_kernel_time")):
                continue
            types = [next(iter(t), None) for t in args.get("input_type_shape") or () if isinstance(t, dict)]
            precision = "int8" if {"int8", "uint8"} & set(types) else types[0] if types else None
            found.append(Op(args["op_name"], 1, event.get("dur", 0) / 1e6, precision))
        return found, wall, calls

    def place(self, inputs: Any) -> Any:
        array = inputs.numpy()
        if self.device == "cpu":
            return array
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)

    def to_host(self, outputs: Any) -> Any:
        return outputs if self.device == "cpu" else outputs.numpy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def cuda_provider() -> bool:
    """ONNX Runtime has its CUDA provider and torch sees a CUDA device (it supplies the stream)."""
    import onnxruntime as ort
    import torch

    return "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()
