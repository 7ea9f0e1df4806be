"""Your own ONNX file: `{name: onnx_file, path: model.onnx}`, exported elsewhere or from a vendor,
with its external-data files next to it. It runs on the backends that read ONNX (onnxruntime,
openvino, tensorrt), with ONNX Runtime's int8 steps (`ort_int8_dynamic`, `ort_int8_static`,
calibrated on the scenario's dataset) applied to it; torch backends and torch steps refuse it
when the scenario is validated. Name a dataset for it: its one input's dtype and fixed axes must
fit the dataset's samples (checked when it loads); a fixed batch axis limits the scenario's
batch sizes to that one (checked at validation). Needs the `onnx` extra.
"""

from __future__ import annotations

from models.byo import FileParams
from models.spec import ModelSpec


def load(params: FileParams, data):
    from suite.backends.onnx_model import from_file

    return from_file(params.path, data)


def fixed_batch(params: FileParams) -> int | None:
    from suite.backends.onnx_model import fixed_batch_of

    return fixed_batch_of(params.path)


SPEC = ModelSpec(
    description="your own ONNX file, run by the backends that read ONNX (path: model.onnx)",
    Params=FileParams, build=load, dataset=None, train=None, provides_weights=True, format="onnx",
    fixed_batch=fixed_batch,
)
