"""What a LightningModule needs to be trained by the DP-SGD callback: its per-example
criterion, and a training loss whose backward() runs Opacus' ghost-clipping passes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class PrivateLoss:
    """Mixin for a LightningModule (listed before it). `training_loss` returns the plain loss
    Lightning logs; under DP-SGD, `backward` runs the private loss's two passes instead."""

    # The loss whose reduction="none" gives one value per example: what Opacus clips by.
    private_criterion: nn.Module = nn.CrossEntropyLoss()
    # Set by the DP-SGD callback; None trains as usual.
    private_loss: Callable | None = None
    _private_backward = None

    def training_loss(self, outputs: torch.Tensor, targets: torch.Tensor,
                      plain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                      ) -> torch.Tensor:
        if self.private_loss is None:
            return plain(outputs, targets)
        self._private_backward = self.private_loss(outputs, targets)
        return self._private_backward.detach()

    def backward(self, loss: torch.Tensor, *args, **kwargs) -> None:
        private, self._private_backward = self._private_backward, None
        if private is None:
            super().backward(loss, *args, **kwargs)
        else:
            private.backward()


class PerRowBCE(nn.Module):
    """Binary cross-entropy on (B, C) logits where a row is one example (an interaction and its
    negatives): reduction="none" gives each row's mean, (B,), as Opacus needs."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        losses = nn.functional.binary_cross_entropy_with_logits(logits, labels,
                                                                reduction="none")
        per_row = losses.mean(dim=1)
        return per_row if self.reduction == "none" else \
            per_row.sum() if self.reduction == "sum" else per_row.mean()
