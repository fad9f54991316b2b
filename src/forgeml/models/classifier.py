"""The image network that is saved and served: pixel normalisation (training-split statistics)
in front of the image model, so the model takes raw [0, 1] pixels."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Standardise pixels with the training split's statistics, so the saved model takes raw
    [0, 1] pixels."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NormalizedNetwork(nn.Sequential):
    """Normalize, then the image model: what is saved and served takes raw pixels. `model` is
    a module, or the spec of a registered one (when rebuilt from a saved model)."""

    def __init__(self, model: nn.Module | dict, mean: float, std: float):
        from forgeml.models import registry

        if isinstance(model, dict):
            model = registry.build(model)
        super().__init__(Normalize(mean, std), model)
        self.spec = {"model": registry.spec_of(model), "mean": float(mean), "std": float(std)}

    @property
    def model(self) -> nn.Module:
        """The image model behind the normalisation."""
        return self[1]


def build_network(model: nn.Module, mean: float, std: float) -> NormalizedNetwork:
    return NormalizedNetwork(model, mean, std)
