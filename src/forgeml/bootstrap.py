"""Bootstrap intervals and paired differences over per-example values (numpy only: reports and
the retraining gate use them without torch)."""

from __future__ import annotations

import numpy as np


def level(confidence: float) -> str:
    """How an interval's confidence is shown (`evaluate.confidence` 0.95 -> "95%")."""
    return f"{confidence:.0%}"


def bootstrap_interval(correct: np.ndarray, samples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of a 0/1 vector (e.g. accuracy)."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(correct), size=(samples, len(correct)))
    means = correct[index].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_difference(correct_a: np.ndarray, correct_b: np.ndarray,
                                samples: int = 1000, confidence: float = 0.95,
                                seed: int = 0) -> dict[str, float]:
    """Accuracy of A minus B on the same examples: the difference, its interval, and the share
    of resamples where A is not better (a one-sided bootstrap p-value)."""
    rng = np.random.default_rng(seed)
    diff = correct_a.astype(float) - correct_b.astype(float)
    index = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[index].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"difference": float(diff.mean()), "low": float(low), "high": float(high),
            "p_not_better": float((means <= 0).mean())}


def bootstrap_metric(metric, labels: np.ndarray, scores: np.ndarray, samples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of any metric(labels, scores) (F1, ROC-AUC, ...); resamples
    holding a single class are skipped (the metric is undefined there)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        index = rng.integers(0, len(labels), size=len(labels))
        if len(np.unique(labels[index])) < 2:
            continue
        values.append(metric(labels[index], scores[index]))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
