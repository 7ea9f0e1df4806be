"""torch.compile with inductor. The first calls compile; that time is recorded apart from the
steady-state latency, which is timed after warm-up as for every backend."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Literal

from suite.backends.eager import EagerBackend, EagerParams
from suite.build.weights import cache_folder


class CompileParams(EagerParams):
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    # False: one specialised graph per input shape, as TensorRT builds one engine per profile.
    # (Dynamic shapes plus freezing break PT2E int8 graphs in torch 2.13: a stride assertion
    # fails on the second batch size.) None: torch decides; True: dynamic from the start.
    dynamic: bool | None = False
    # Constant-fold the weights into the graph: needed for the int8 kernels of quantized graphs.
    freezing: bool = True


class CompileBackend(EagerBackend):
    Params = CompileParams
    description = "torch.compile (inductor; CPU, or CUDA when present)"
    takes = ("torch", "torch_only")
    tasks = ("classify", "generate")

    def __init__(self, params: CompileParams):
        super().__init__(params)
        self.compile_s: float | None = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": self.params.mode, "dynamic": self.params.dynamic,
                "freezing": self.params.freezing, "compile_s": self.compile_s}

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> Any:
        """A suite.lm.Decoder over the causal LM's compiled forward, with a static KV cache (a
        growing cache would recompile each token). Compiling happens in the first calls."""
        from suite.errors import SuiteError
        from suite.lm import Decoder

        if cache in ("dynamic", "fp8"):
            raise SuiteError(f"backend compile: generate.cache {cache!r} grows the KV cache every token, which "
                             "recompiles the graph each time: use 'static' or 'auto'")
        self._configure()
        model.eval()
        model = model.to(self.device)
        # Unless the scenario sets `dynamic`, torch decides (None): after a first recompile, the
        # prompt length and batch size become symbolic, and one graph serves every prompt length
        # (5 graphs instead of 8 for 2 lengths x 2 batch sizes, 31 s instead of 66 s of compiling
        # for the 2-layer GPT-2 here).
        dynamic = self.params.dynamic if "dynamic" in self.params.model_fields_set else None
        forward = torch_compile(model.forward, self.params.mode, dynamic)
        return Decoder(model, self.device, "static", forward=forward)

    def _configure(self) -> None:
        import torch

        # Background compile workers would compete with the measurement for the cores. (The
        # TORCHINDUCTOR_COMPILE_THREADS variable is read only when inductor is first imported.)
        torch._inductor.config.compile_threads = 1
        # Inductor's caches (its own keys: the graph, the versions, the config) in suite's cache
        # folder, kept across runs like the checkpoints, unless the user points them elsewhere. A
        # frozen graph bypasses its FX graph cache (it holds mkldnn-packed weights, which do not
        # pickle): such a model compiles again in every process.
        folder = cache_folder("inductor")
        if folder is not None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
        # Global, not per call: recompiles for new batch sizes happen later, while timing.
        torch._inductor.config.freezing = self.params.freezing
        # Past the recompile limit torch would silently run the model eagerly: fail instead.
        torch._dynamo.config.recompile_limit = 64
        torch._dynamo.config.fail_on_recompile_limit_hit = True


    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        import torch

        self._configure()
        model.eval()
        compiled = torch_compile(model.to(self.device), self.params.mode, self.params.dynamic)

        @torch.inference_mode()
        def run(inputs: Any) -> Any:
            return compiled(inputs)

        start = time.perf_counter()
        run(self.place(example_inputs))
        self.synchronize()
        self.compile_s = round(time.perf_counter() - start, 3)
        return run


def torch_compile(fn: Any, mode: str, dynamic: bool | None) -> Any:
    import torch

    return torch.compile(fn, mode=mode, dynamic=dynamic)
