"""The small convolutional classifier of the classic PyTorch MNIST example, sized for any image."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv-relu, conv-relu, max-pool, dropout, linear-relu, dropout, linear."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], num_classes: int,
                 channels: tuple[int, int] = (32, 64), hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(dropout))
        flat = channels[1] * (image_size[0] // 2) * (image_size[1] // 2)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(2 * dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
