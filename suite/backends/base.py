"""The contract every backend meets. A backend is built from its validated Params.

Optional: `profile_ops(run, inputs, calls) -> (ops, wall_s, calls_made)`, the backend's own
profiler over up to `calls` calls of the prepared `run` on placed `inputs` (suite.measure.ops.Op
rows: operator, count, own seconds, precision), for measure.profile's operator tables
(suite.profiling)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from suite.params import Params


class Backend(Protocol):
    Params: type[Params]
    description: str
    takes: tuple[str, ...]  # model formats it runs (see scenario.FORMATS)

    def __init__(self, params: Any) -> None: ...

    def available(self) -> str | None:
        """None when this backend can run here with these params; otherwise the reason it cannot."""

    def version(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """What the results should record about how it ran (device, precision, ...)."""

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        """A callable that runs the model on inputs already placed with `place`.
        `example_inputs` are a small batch of host inputs (a torch tensor); `train_inputs` the
        training split's inputs, for backends that calibrate (TensorRT int8)."""

    def place(self, inputs: Any) -> Any:
        """Move host inputs to where the prepared callable expects them."""

    def to_host(self, outputs: Any) -> Any:
        """The prepared callable's outputs as a numpy array in host memory."""

    def synchronize(self) -> None:
        """Wait until all queued work is done, so a timer read afterwards is honest."""


class HostDecoderBackend:
    """The shared part of a backend that runs generative decoders only (prepare_decoder), on the
    CPU, in a library whose calls return when their work is done: it records what it prepared in
    `info`, and its decoders take and give host tensors. Subclasses set `name` (their registry
    name, for messages)."""

    name: str

    def __init__(self, params: Any):
        self.params = params
        self.info: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"device": "cpu", **self.info}

    def prepare(self, model: Any, example_inputs: Any, train_inputs: Any = None) -> Callable[[Any], Any]:
        from suite.errors import SuiteError

        raise SuiteError(f"backend {self.name} runs generative decoders only")

    def place(self, inputs: Any) -> Any:
        return inputs

    def to_host(self, outputs: Any) -> Any:
        return outputs.numpy()

    def synchronize(self) -> None:
        pass
