"""The contract every backend meets. A backend is built from its validated Params."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from suite.params import Params


class Backend(Protocol):
    Params: type[Params]
    description: str

    def __init__(self, params: Any) -> None: ...

    def available(self) -> str | None:
        """None when this backend can run here with these params; otherwise the reason it cannot."""

    def version(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """What the results should record about how it ran (device, precision, ...)."""

    def prepare(self, model: Any, example_inputs: Any) -> Callable[[Any], Any]:
        """A callable that runs the model on inputs already placed with `place`."""

    def place(self, inputs: Any) -> Any:
        """Move host inputs to where the prepared callable expects them."""

    def synchronize(self) -> None:
        """Wait until all queued work is done, so a timer read afterwards is honest."""
