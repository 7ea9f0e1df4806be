"""What a dataset is to the rest of suite: three labelled splits and an honest description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from suite.config.params import Params


@dataclass(frozen=True)
class Split:
    x: Any  # torch.Tensor, samples first
    y: Any  # torch.Tensor of class indices

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # where the data comes from, and whether it is real or generated
    train: Split
    val: Split
    test: Split
    num_classes: int
    labelled: bool = True  # False: the labels are placeholders; no training, no accuracy
    vocab_size: int | None = None  # for token inputs: ids lie in [0, vocab_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.test.x.shape[1:])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "labelled": self.labelled,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
        }


@dataclass(frozen=True)
class TextCorpus:
    """Text for generative decoders: passages in three splits, tokenized later by the model's own
    tokenizer (suite.lm.tokenized)."""

    name: str
    source: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source,
                "passages": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
                "characters": {k: sum(map(len, getattr(self, k))) for k in ("train", "val", "test")}}


class SplitParams(Params):
    """How labelled arrays are cut into train, validation and test splits (stratified, seeded)."""

    val_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    # Kept apart from the scenario's seed, so changing the training seed keeps the test set.
    split_seed: int = 0


def split_arrays(x: Any, y: Any, params: SplitParams) -> tuple[Split, Split, Split]:
    """Stratified train / validation / test splits of numpy arrays, as tensors."""
    import torch
    from sklearn.model_selection import train_test_split

    seed = params.split_seed
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=params.test_fraction, stratify=y, random_state=seed)
    val_share = params.val_fraction / (1.0 - params.test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_share, stratify=y_rest, random_state=seed)
    return tuple(Split(torch.from_numpy(xs), torch.from_numpy(ys).long())  # type: ignore[return-value]
                 for xs, ys in ((x_train, y_train), (x_val, y_val), (x_test, y_test)))


@dataclass(frozen=True)
class DatasetSpec:
    description: str
    Params: type[Params]
    load: Callable[[Any], Any]  # -> Dataset, or TextCorpus for task "generate"
    task: str = "classify"  # the models it feeds: "classify", or "generate" (generative decoders)
