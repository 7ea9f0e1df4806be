"""Accuracy on held-out data, and how closely one variant's outputs follow another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from suite.errors import SuiteError


def outputs(run: Callable[[Any], Any], place: Callable[[Any], Any], to_host: Callable[[Any], Any],
            inputs: Any, batch_size: int) -> np.ndarray:
    """The model's outputs (logits) for every input, in order, computed in batches of one size, in
    host memory. A short last batch is filled up with the inputs just before it and their
    outputs dropped: the model sees a single input shape."""
    batches = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        short = len(batch)
        if short < batch_size and len(inputs) >= batch_size:
            batch = inputs[start - (batch_size - short):start + short]  # the inputs before it fill it up
        scores = np.asarray(to_host(run(place(batch))), dtype=np.float32)
        if scores.ndim != 2 or len(scores) != len(batch):
            raise SuiteError(f"the model gave outputs of shape {tuple(scores.shape)} for a batch of {len(batch)} "
                             "inputs; suite reads (batch, classes) scores")
        batches.append(scores[-short:])
    return finite(np.concatenate(batches))


def finite(scores: np.ndarray) -> np.ndarray:
    """The scores, refused where any is NaN or a row has no finite score: an argmax of those is
    no prediction (an all-NaN model once scored accuracy 0.1 and agreement 1.0 with itself)."""
    nan_rows = int(np.isnan(scores).any(axis=-1).sum())
    dead_rows = int((~np.isfinite(scores).any(axis=-1)).sum())
    if nan_rows or dead_rows:
        raise SuiteError(f"the model gave non-finite outputs (NaN or infinity) for {max(nan_rows, dead_rows)} of "
                         f"{len(scores)} inputs: its predictions mean nothing (check its weights and inputs)")
    return scores


def accuracy(logits: np.ndarray, labels: Any) -> float:
    return float(np.mean(logits.argmax(axis=-1) == np.asarray(labels)))


def agreement(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (share of inputs with the same predicted class), the largest absolute
    difference of any output, and the cosine similarity of output vectors (mean and worst)."""
    dot = (logits * reference).sum(axis=-1)
    norms = np.linalg.norm(logits, axis=-1) * np.linalg.norm(reference, axis=-1)
    both_zero = np.all(logits == 0, axis=-1) & np.all(reference == 0, axis=-1)
    cosine = np.where(norms > 0, dot / np.maximum(norms, 1e-30), np.where(both_zero, 1.0, 0.0))
    cosine = np.clip(cosine, -1.0, 1.0)  # float rounding can pass 1
    return {"top1": float(np.mean(logits.argmax(axis=-1) == reference.argmax(axis=-1))),
            "max_abs_error": float(np.abs(logits - reference).max()),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}
