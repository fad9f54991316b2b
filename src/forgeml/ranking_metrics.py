"""Top-K ranking metrics for a held-out item among candidates: hit rate and NDCG."""

from __future__ import annotations

import numpy as np
import torch


def rank_of_target(scores: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """0-based rank of column 0 (the held-out item) within each row of `scores` (higher score =
    ranked first). Ties are broken at random (seeded), so a constant scorer is not rewarded."""
    scores = np.asarray(scores, dtype=np.float64)
    target = scores[:, :1]
    above = (scores[:, 1:] > target).sum(axis=1)
    ties = (scores[:, 1:] == target).sum(axis=1)
    if rng is None:
        return above
    return above + np.floor(rng.random(len(ties)) * (ties + 1)).astype(np.int64)


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per row: 1 if the held-out item is in the top k."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per row: 1/log2(rank + 2) if the held-out item is in the top k, else 0 (one relevant item,
    so the ideal DCG is 1)."""
    ranks = np.asarray(ranks)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def torch_rank_of_target(scores: torch.Tensor) -> torch.Tensor:
    """On-device version for validation (model scores: ties are negligible)."""
    return (scores[:, 1:] > scores[:, :1]).sum(dim=1)
