"""An LSTM sequence classifier: reads (batch, steps, features), or token ids (batch, steps) through an
embedding, and classifies from the last step."""

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
        if self.embedding is not None:
            x = self.embedding(x)
        outputs, _ = self.lstm(x.flatten(2) if x.dim() > 3 else x)
        return self.fc(outputs[:, -1])
