"""Neural Matrix Factorization (He et al., 2017, §3.4): GMF and MLP side by side.

Each branch has its own embeddings; the GMF vector (p_u ⊙ q_i) and the last MLP layer are
concatenated and one linear layer turns them into the logit.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.gmf import GMF
from forgeml.models.ncf_mlp import NCFMLP


class NeuMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, factors: int = 32,
                 layers: tuple[int, ...] = (64, 32, 16, 8), dropout: float = 0.0):
        super().__init__()
        self.gmf = GMF(num_users, num_items, factors)
        self.mlp = NCFMLP(num_users, num_items, tuple(layers), dropout)
        self.out = nn.Linear(factors + layers[-1], 1)
        del self.gmf.out, self.mlp.out  # NeuMF has one output layer over both branches

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """(..., 2) int64 [user, item] pairs -> (...) logits."""
        both = torch.cat([self.gmf.features(pairs), self.mlp.features(pairs)], dim=-1)
        return self.out(both).squeeze(-1)
