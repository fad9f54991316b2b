"""The MLP branch of Neural Collaborative Filtering (He et al., 2017, §3.3).

score(u, i) = tower([p_u ; q_i]): user and item embeddings concatenated and passed through a
tower of ReLU layers that halves in width (e.g. 64 → 32 → 16 → 8), then a linear output.
"""

from __future__ import annotations

import torch
from torch import nn


class NCFMLP(nn.Module):
    def __init__(self, num_users: int, num_items: int, layers: tuple[int, ...] = (64, 32, 16, 8),
                 dropout: float = 0.0):
        super().__init__()
        if layers[0] % 2:
            raise ValueError("layers[0] must be even: it is the user and item embeddings side by "
                             "side")
        self.user = nn.Embedding(num_users, layers[0] // 2)
        self.item = nn.Embedding(num_items, layers[0] // 2)
        tower: list[nn.Module] = []
        for width_in, width_out in zip(layers[:-1], layers[1:], strict=False):
            tower += [nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(dropout)]
        self.tower = nn.Sequential(*tower)
        self.out = nn.Linear(layers[-1], 1)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)

    def features(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.tower(torch.cat([self.user(pairs[..., 0]), self.item(pairs[..., 1])], dim=-1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """(..., 2) int64 [user, item] pairs -> (...) logits."""
        return self.out(self.features(pairs)).squeeze(-1)
