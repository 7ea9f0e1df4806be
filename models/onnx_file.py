"""Your own ONNX file: `{name: onnx_file, path: model.onnx}`, exported elsewhere or from a vendor,
with its external-data files next to it. It runs on the backends that read ONNX (onnxruntime,
openvino, tensorrt), with ONNX Runtime's int8 steps (`ort_int8_dynamic`, `ort_int8_static`,
calibrated on the scenario's dataset) applied to it; torch backends and torch steps refuse it
when the scenario is validated. Name a dataset for it: its one input's dtype and fixed axes must
fit the dataset's samples (checked when it loads); a fixed batch axis limits the scenario's
batch sizes to that one, a fixed sequence axis (token ids) its seq_lens (checked at validation).
`output` names the output read as the (batch, classes) scores where the file has several (a
converted scikit-learn classifier gives `label` then `probabilities`); the first by default.
Needs the `onnx` extra.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from models.byo import FileParams
from models.spec import ModelSpec


class Params(FileParams):
    output: str | None = Field(None, min_length=1, max_length=1000)  # the scores; None: the first output

    @field_validator("output")
    @classmethod
    def _in_the_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        from suite.formats.onnx_model import output_names_of

        path = info.data.get("path")
        names = output_names_of(path) if value is not None and path is not None else None  # None: unreadable
        if names is not None and value not in names:  # (loading the model then says what is wrong with it)
            raise ValueError(f"{path.name} has no output {value!r} (its outputs: {', '.join(map(repr, names))})")
        return value


def load(params: Params, data):
    from suite.formats.onnx_model import from_file

    return from_file(params.path, data, params.output)


def fixed_axes(params: Params) -> tuple[int | None, ...]:
    from suite.formats.onnx_model import input_axes_of

    return input_axes_of(params.path)


SPEC = ModelSpec(
    description="your own ONNX file, run by the backends that read ONNX (path: model.onnx)",
    Params=Params, build=load, dataset=None, train=None, provides_weights=True, format="onnx",
    fixed_axes=fixed_axes,
)
