"""Accuracy on held-out data, and agreement between two variants' predictions."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def predict(run: Callable[[Any], Any], place: Callable[[Any], Any], inputs: Any, batch_size: int) -> np.ndarray:
    """Top-1 class predicted for every input, in order, in batches."""
    predictions = []
    for start in range(0, len(inputs), batch_size):
        outputs = run(place(inputs[start:start + batch_size]))
        logits = getattr(outputs, "logits", outputs)
        predictions.append(logits.argmax(dim=-1).cpu().numpy())
    return np.concatenate(predictions)


def accuracy(predictions: np.ndarray, labels: Any) -> float:
    return float(np.mean(predictions == np.asarray(labels)))


def agreement(predictions: np.ndarray, reference: np.ndarray) -> float:
    """Share of inputs on which two variants predict the same class (top-1 agreement)."""
    return float(np.mean(predictions == reference))
