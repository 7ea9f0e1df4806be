"""scikit-learn's handwritten digits: 1,797 real 8x8 images in 10 classes, shipped in the package."""

from __future__ import annotations

from pydantic import Field

from suite.datasets.base import Dataset, DatasetSpec, Split
from suite.params import Params


class DigitsParams(Params):
    val_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    # Kept apart from the scenario's seed, so changing the training seed keeps the test set.
    split_seed: int = 0


def load(params: DigitsParams) -> Dataset:
    """As images: (1, 8, 8) per sample."""
    return _split(params, shape=(1, 8, 8), name="digits", form="images")


def load_rows(params: DigitsParams) -> Dataset:
    """As sequences for recurrent models: 8 steps (the rows) of 8 features each."""
    return _split(params, shape=(8, 8), name="digits_rows", form="read row by row, 8 steps of 8 features")


def _split(params: DigitsParams, shape: tuple[int, ...], name: str, form: str) -> Dataset:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, *shape)
    seed = params.split_seed
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=params.test_fraction, stratify=y, random_state=seed)
    val_share = params.val_fraction / (1.0 - params.test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_share, stratify=y_rest, random_state=seed)

    def split(xs, ys) -> Split:
        return Split(torch.from_numpy(xs), torch.from_numpy(ys).long())

    return Dataset(
        name=name,
        source=f"scikit-learn load_digits: real handwritten digits, 8x8 grey levels scaled to [0, 1], {form}",
        train=split(x_train, y_train), val=split(x_val, y_val), test=split(x_test, y_test),
        num_classes=10,
    )


SPEC = DatasetSpec(
    description="real handwritten digits from scikit-learn (1,797 images, 8x8, 10 classes), stratified split",
    Params=DigitsParams,
    load=load,
)

ROWS = DatasetSpec(
    description="the same digits and split, read row by row: 8 steps of 8 features (for sequence models)",
    Params=DigitsParams,
    load=load_rows,
)
