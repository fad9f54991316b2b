"""CNN: Conv(channels @ 3x3) -> ReLU -> MaxPool 2 -> Flatten -> Linear -> ReLU -> Linear."""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self, image_shape: list[int], num_classes: int, channels: int = 32,
                 hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        in_channels, height, width = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = channels * ((height - 2) // 2) * ((width - 2) // 2)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
