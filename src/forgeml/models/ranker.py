"""Scoring a user's candidate items with any (user, item) -> logit network."""

from __future__ import annotations

import torch
from torch import nn


def score_candidates(network: nn.Module, users: torch.Tensor, candidates: torch.Tensor
                     ) -> torch.Tensor:
    """Logits (B, C) of each user's C candidate items."""
    pairs = torch.stack([users[:, None].expand_as(candidates), candidates], dim=-1)
    return network(pairs.reshape(-1, 2)).view(candidates.shape)
