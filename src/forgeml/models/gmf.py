"""Generalized Matrix Factorization (He et al., 2017, "Neural Collaborative Filtering", §3.2).

score(u, i) = h · (p_u ⊙ q_i): the element-wise product of a user and an item embedding,
weighted by a learned vector h (plain MF is the special case h = 1).
"""

from __future__ import annotations

import torch
from torch import nn


class GMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, factors: int = 32):
        super().__init__()
        self.user = nn.Embedding(num_users, factors)
        self.item = nn.Embedding(num_items, factors)
        self.out = nn.Linear(factors, 1)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)

    def features(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.user(pairs[..., 0]) * self.item(pairs[..., 1])

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """(..., 2) int64 [user, item] pairs -> (...) logits of "the user interacts with the
        item"."""
        return self.out(self.features(pairs)).squeeze(-1)
