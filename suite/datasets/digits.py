"""scikit-learn's handwritten digits: 1,797 real 8x8 images in 10 classes, shipped in the package."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from suite.datasets.base import Dataset, DatasetSpec, SplitParams, split_arrays


class DigitsParams(SplitParams):
    # Upsampled (bilinear) to this side: the same information, at the cost in arithmetic of a
    # CIFAR-sized image, for benchmarks of compute rather than per-call overhead.
    image_size: int = Field(8, ge=8, le=256)


def load(params: DigitsParams) -> Dataset:
    """As images: (1, 8, 8) per sample, or (1, image_size, image_size)."""
    data = _load(params, shape=(1, 8, 8), name="digits", form="images")
    if params.image_size == 8:
        return data
    side = params.image_size
    return replace(data, train=upsample(data.train, side), val=upsample(data.val, side), test=upsample(data.test, side),
                   source=data.source + f", upsampled (bilinear) to {side}x{side}")


def upsample(split, side: int):
    import torch.nn.functional as F

    return replace(split, x=F.interpolate(split.x, size=(side, side), mode="bilinear", align_corners=False))


def load_rows(params: SplitParams) -> Dataset:
    """As sequences for recurrent models: 8 steps (the rows) of 8 features each."""
    return _load(params, shape=(8, 8), name="digits_rows", form="read row by row, 8 steps of 8 features")


def _load(params: SplitParams, shape: tuple[int, ...], name: str, form: str) -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    train, val, test = split_arrays((x / 16.0).astype("float32").reshape(-1, *shape), y, params)
    return Dataset(
        name=name,
        source=f"scikit-learn load_digits: real handwritten digits, 8x8 grey levels scaled to [0, 1], {form}",
        train=train, val=val, test=test, num_classes=10,
    )


SPEC = DatasetSpec(
    description="real handwritten digits from scikit-learn (1,797 images, 8x8 or upsampled, 10 classes), stratified split",
    Params=DigitsParams,
    load=load,
)

ROWS = DatasetSpec(
    description="the same digits and split, read row by row: 8 steps of 8 features (for sequence models)",
    Params=SplitParams,
    load=load_rows,
)
