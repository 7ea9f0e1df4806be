"""An LSTM sequence classifier. It reads (batch, steps, features) and classifies from the last step,
or token ids (batch, steps) through an embedding and classifies from the mean over the non-padding
steps: with padding at the end, the last step would be a pad the backward direction knows nothing of."""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    def __init__(self, features: int, hidden: int, layers: int, bidirectional: bool, num_classes: int,
                 dropout: float = 0.0, vocab_size: int | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, features, padding_idx=0) if vocab_size else None
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            outputs, _ = self.lstm(x.flatten(2) if x.dim() > 3 else x)
            return self.fc(outputs[:, -1])
        outputs, _ = self.lstm(self.embedding(x))
        mask = (x != 0).unsqueeze(-1).to(outputs.dtype)
        return self.fc((outputs * mask).sum(1) / mask.sum(1).clamp(min=1.0))
