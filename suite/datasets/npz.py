"""The user's own arrays: a NumPy .npz file holding `x` (samples first) and `y` (class indices)."""

from __future__ import annotations

from suite.config.params import ExistingFile
from suite.datasets.base import Dataset, DatasetSpec, SplitParams, split_arrays
from suite.errors import SuiteError


class NpzParams(SplitParams):
    path: ExistingFile
    x_key: str = "x"
    y_key: str = "y"


def load(params: NpzParams) -> Dataset:
    import numpy as np

    try:
        with np.load(params.path, allow_pickle=False) as arrays:
            x, y = (_array(arrays, key, params) for key in (params.x_key, params.y_key))
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{params.path}: cannot read as .npz ({exc})") from None
    if len(x) != len(y) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise SuiteError(f"{params.path}: need {params.x_key} with samples first and {params.y_key} a 1-D integer "
                         f"array of the same length (got shapes {x.shape} and {y.shape}, {y.dtype})")
    classes = np.unique(y)
    if classes.min() < 0:
        raise SuiteError(f"{params.path}: {params.y_key} holds negative class indices")
    train, val, test = split_arrays(x.astype("float32"), y.astype("int64"), params)
    return Dataset(name="npz", source=f"user data: {params.path} ({len(y)} samples, {len(classes)} classes)",
                   train=train, val=val, test=test, num_classes=int(classes.max()) + 1)


def _array(arrays, key: str, params: NpzParams):
    if key not in arrays:
        raise SuiteError(f"{params.path}: no array named {key!r} (it holds: {', '.join(arrays.files) or 'nothing'})")
    return arrays[key]


SPEC = DatasetSpec(
    description="your arrays: an .npz file with x (samples first) and y (class indices), stratified split",
    Params=NpzParams,
    load=load,
)
