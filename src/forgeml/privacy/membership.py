"""Membership inference: can someone holding the model tell whether an example was in its
training data? A loss-threshold attack (Yeom et al., 2018): training examples tend to get lower
loss, so the attack's score is minus the loss. AUC 0.5 means it does no better than guessing."""

from __future__ import annotations

import numpy as np


def loss_threshold_attack(member_losses: np.ndarray, non_member_losses: np.ndarray,
                          bootstrap_samples: int, confidence: float, seed: int) -> dict:
    """The attack's AUC with a bootstrap interval (members and non-members resampled
    separately), and its best advantage: max over thresholds of TPR - FPR."""
    from sklearn.metrics import roc_curve

    members = np.asarray(member_losses, dtype=np.float64)
    others = np.asarray(non_member_losses, dtype=np.float64)
    if len(members) == 0 or len(others) == 0:
        raise ValueError("the attack needs both training and held-out examples")
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(members)), np.zeros(len(others))],
                            -np.r_[members, others])
    rng = np.random.default_rng(seed)
    aucs = auc(-members[rng.integers(0, len(members), (bootstrap_samples, len(members)))],
               -others[rng.integers(0, len(others), (bootstrap_samples, len(others)))])
    tail = (1 - confidence) / 2 * 100
    return {"attack": "loss-threshold", "auc": float(auc(-members[None], -others[None])[0]),
            "auc_ci": [float(np.percentile(aucs, tail)), float(np.percentile(aucs, 100 - tail))],
            "advantage": float(np.max(tpr - fpr)), "members": len(members),
            "non_members": len(others)}


def auc(member_scores: np.ndarray, other_scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row pair (members score higher = detected), ties counted half: the
    Mann-Whitney statistic from ranks, for all bootstrap rows at once."""
    from scipy.stats import rankdata

    m, n = member_scores.shape[1], other_scores.shape[1]
    ranks = rankdata(np.concatenate([member_scores, other_scores], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct indices of `n`, the same for a seed (every run attacks the same set)."""
    return np.sort(np.random.default_rng(seed).choice(n, min(size, n), replace=False))
