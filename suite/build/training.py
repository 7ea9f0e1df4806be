"""The shared training loop: AdamW, cosine learning-rate schedule, early stopping on validation loss."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suite.datasets.base import Dataset, Split


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation loss before stopping
    max_batches: int | None = None  # per epoch; set by --quick only
    steps_per_epoch: int = 100  # language models: batches of random windows that make an "epoch"


# on_epoch(epoch, epochs, train_loss, val_accuracy)
EpochCallback = Callable[[int, int, float, float], None]


def train(model: Any, data: Dataset, config: TrainConfig, seed: int, on_epoch: EpochCallback | None = None) -> dict:
    """Train in place; the weights of the epoch with the best validation loss are kept."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    best = {"loss": math.inf, "epoch": -1, "state": None, "accuracy": 0.0}
    start, epoch = time.perf_counter(), -1
    for epoch in range(config.epochs):
        train_loss = _train_epoch(model, data.train, config, optimizer, generator)
        schedule.step()
        val_loss, val_accuracy = evaluate(model, data.val)
        if val_loss < best["loss"]:
            best = {"loss": val_loss, "epoch": epoch, "state": copy.deepcopy(model.state_dict()),
                    "accuracy": val_accuracy}
        if on_epoch:
            on_epoch(epoch + 1, config.epochs, train_loss, val_accuracy)
        if epoch - best["epoch"] >= config.patience:
            break
    model.load_state_dict(best["state"])
    return {"epochs_run": epoch + 1, "best_epoch": best["epoch"] + 1, "val_loss": best["loss"],
            "val_accuracy": best["accuracy"], "seconds": round(time.perf_counter() - start, 3),
            "stopped_early": epoch + 1 < config.epochs}


def _train_epoch(model: Any, split: Split, config: TrainConfig, optimizer: Any, generator: Any) -> float:
    import torch
    import torch.nn.functional as F

    model.train()
    order = torch.randperm(len(split), generator=generator)
    starts = range(0, len(split), config.batch_size)[:config.max_batches]
    total, seen = 0.0, 0
    for start in starts:
        index = order[start:start + config.batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(split.x[index]), split.y[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
        seen += len(index)
    return total / seen


def evaluate(model: Any, split: Split, batch_size: int = 512) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy on a split."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(dim=-1) == y).sum().item()
    return loss / len(split), correct / len(split)


def train_lm(model: Any, data: Any, config: TrainConfig, seed: int, on_epoch: EpochCallback | None = None) -> dict:
    """Train a causal LM in place on next-token prediction: each epoch `steps_per_epoch` batches of
    random windows of the train split (the model's context length, at most 256 tokens); the
    weights of the epoch with the best validation loss are kept (early stopping on it)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    context = min(256, model.config.max_position_embeddings, len(data.train_ids) - 1)
    val = data.windows("val", context, max(1, min(32, len(data.val_ids) // context)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = min(config.steps_per_epoch, config.max_batches or config.steps_per_epoch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    best = {"loss": math.inf, "epoch": -1, "state": None}
    start, epoch = time.perf_counter(), -1
    for epoch in range(config.epochs):
        model.train()
        total = 0.0
        for _ in range(steps):
            starts = torch.randint(0, len(data.train_ids) - context, (config.batch_size,), generator=generator)
            batch = torch.stack([data.train_ids[s:s + context] for s in starts.tolist()])
            optimizer.zero_grad()
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        val_loss = lm_loss(model, val)
        if val_loss < best["loss"]:
            best = {"loss": val_loss, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        if on_epoch:
            on_epoch(epoch + 1, config.epochs, total / steps, math.exp(val_loss))
        if epoch - best["epoch"] >= config.patience:
            break
    model.load_state_dict(best["state"])
    model.eval()
    return {"epochs_run": epoch + 1, "best_epoch": best["epoch"] + 1, "val_loss": best["loss"],
            "val_perplexity": math.exp(best["loss"]), "context": context, "steps_per_epoch": steps,
            "seconds": round(time.perf_counter() - start, 3), "stopped_early": epoch + 1 < config.epochs}


def lm_loss(model: Any, windows: Any, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy over windows (count, length)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = windows[start:start + batch_size]
            total += model(input_ids=batch, labels=batch).loss.item() * batch[:, 1:].numel()
            count += batch[:, 1:].numel()
    return total / count
