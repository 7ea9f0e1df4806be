"""What a dataset is to the rest of suite: three labelled splits and an honest description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from suite.params import Params


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
class DatasetSpec:
    description: str
    Params: type[Params]
    load: Callable[[Any], Dataset]
