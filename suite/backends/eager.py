"""PyTorch eager mode: the reference every other backend is compared with."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

from suite.backends.base import Backend
from suite.config.params import Params


class EagerParams(Params):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present, else CPU


class EagerBackend(Backend):
    Params = EagerParams
    description = "PyTorch eager mode (CPU; CUDA when present)"
    takes = ("torch", "torch_only", "eager_only")  # the model formats it runs (see scenario.FORMATS)
    tasks = ("classify", "generate")  # generative decoders through prepare_decoder

    def __init__(self, params: EagerParams):
        self.params = params

    def available(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        if self.params.device == "cuda" and not _cuda_available():
            return "device 'cuda' asked for, but CUDA is not available on this machine"
        return None

    def version(self) -> str:
        import torch

        return torch.__version__

    @cached_property
    def device(self) -> str:
        if self.params.device == "auto":
            return "cuda" if _cuda_available() else "cpu"
        return self.params.device

    def describe(self) -> dict[str, Any]:
        return {"device": self.device}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        import torch

        model.eval()  # not chained: some models' eval() returns None (PT2E graphs, see int8_static)
        model = model.to(self.device)

        @torch.inference_mode()
        def run(inputs: Any) -> Any:
            return model(inputs)

        return run

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> Any:
        """A suite.lm.Decoder over the causal LM; cache "auto" is dynamic here."""
        from suite.lm import Decoder

        model.eval()
        return Decoder(model.to(self.device), self.device, "dynamic" if cache == "auto" else cache)

    def profile_ops(self, run: Callable[[Any], Any], inputs: Any, calls: int) -> tuple[list, float, int]:
        """torch.profiler over `calls` calls (suite.measure.ops)."""
        from suite.measure.ops import torch_ops

        return torch_ops(lambda: run(inputs), calls, self.synchronize)

    def place(self, inputs: Any) -> Any:
        return inputs.to(self.device)

    def to_host(self, outputs: Any) -> Any:
        """The outputs as a numpy array in host memory."""
        return getattr(outputs, "logits", outputs).float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
