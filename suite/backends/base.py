"""The contract every backend meets: the class `Backend`, which every backend subclasses. Every
attribute the suite reads of a backend is declared here, with its default; a backend overrides
what it does differently. A backend is built from its validated Params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from suite.config.params import Params


class Backend:
    Params: ClassVar[type[Params]] = Params
    description: ClassVar[str] = ""
    takes: ClassVar[tuple[str, ...]] = ("torch",)  # model formats it runs (see scenario.FORMATS)
    tasks: ClassVar[tuple[str, ...]] = ("classify",)  # model tasks it runs (suite.tasks)
    # It runs the model's own file (a GGUF, say), so compression steps cannot change what it runs.
    runs_model_file: ClassVar[bool] = False
    # Its own profiler, for measure.profile's operator tables (suite.measure.profiling): over up to
    # `calls` calls of the prepared `run` on placed `inputs` -> (suite.measure.ops.Op rows:
    # operator, count, own seconds, precision; wall seconds; calls made). None: it has none.
    profile_ops: Callable[[Callable[[Any], Any], Any, int], tuple[list, float, int]] | None = None

    def __init__(self, params: Any) -> None:
        self.params = params

    @classmethod
    def runs_file_with(cls, params: Any) -> bool:
        """Whether, with these params, it runs the model's own file (runs_model_file, unless the
        params decide it)."""
        return cls.runs_model_file

    def available(self) -> str | None:
        """None when this backend can run here with these params; otherwise the reason it cannot."""
        return None

    def version(self) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the results should record about how it ran (device, precision, ...). A backend
        that compresses the weights itself names how in "compressed_weights" (e.g. "int8"): such
        a variant is not an uncompressed one, whatever its compression steps."""
        return {"device": "cpu"}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        """A callable that runs the model on inputs already placed with `place`.
        `example_inputs` are a small batch of host inputs (a torch tensor); `train_inputs` the
        training split's inputs, for backends that calibrate (TensorRT int8)."""
        raise NotImplementedError

    def prepare_decoder(self, model: Any, cache: str, tokenizer: Any, train_ids: Any = None) -> Any:
        """A generative decoder (suite.lm.DecoderContract) over the causal LM `model`, for a
        backend whose `tasks` include "generate". `train_ids`: the training split's token ids (1-D),
        for backends that calibrate (data-aware weight compression)."""
        from suite.errors import SuiteError

        raise SuiteError(f"backend {type(self).__name__} runs no generative decoder")

    def place(self, inputs: Any) -> Any:
        """Move host inputs to where the prepared callable expects them."""
        return inputs

    def to_host(self, outputs: Any) -> Any:
        """The prepared callable's outputs as a numpy array in host memory."""
        return outputs.numpy()

    def synchronize(self) -> None:
        """Wait until all queued work is done, so a timer read afterwards is honest."""


class HostDecoderBackend(Backend):
    """The shared part of a backend that runs generative decoders only (prepare_decoder), on the
    CPU, in a library whose calls return when their work is done: it records what it prepared in
    `info`, and its decoders take and give host tensors. Subclasses set `name` (their registry
    name, for messages)."""

    name: str
    tasks = ("generate",)

    def __init__(self, params: Any):
        super().__init__(params)
        self.info: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"device": "cpu", **self.info}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        from suite.errors import SuiteError

        raise SuiteError(f"backend {self.name} runs generative decoders only")
