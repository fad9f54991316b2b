"""Classification metrics (torchmetrics), bootstrap intervals, and inference latency."""

from __future__ import annotations

import time
from statistics import median

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def classification_metrics(probs: torch.Tensor, labels: torch.Tensor, num_classes: int,
                           calibration_bins: int = 15) -> dict:
    """Loss, accuracy, macro and per-class P/R/F1, confusion matrix and ECE."""
    args = {"num_classes": num_classes}
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels)
    return {
        "loss": float(loss),
        "acc": float(multiclass_accuracy(probs, labels, average="micro", **args)),
        "precision_macro": float(multiclass_precision(probs, labels, average="macro", **args)),
        "recall_macro": float(multiclass_recall(probs, labels, average="macro", **args)),
        "f1_macro": float(multiclass_f1_score(probs, labels, average="macro", **args)),
        "ece": float(multiclass_calibration_error(probs, labels, n_bins=calibration_bins, **args)),
        "per_class": {
            "precision": multiclass_precision(probs, labels, average=None, **args).tolist(),
            "recall": multiclass_recall(probs, labels, average=None, **args).tolist(),
            "f1": multiclass_f1_score(probs, labels, average=None, **args).tolist(),
            "support": torch.bincount(labels, minlength=num_classes).tolist(),
        },
        "confusion_matrix": multiclass_confusion_matrix(probs, labels, **args).tolist(),
    }


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


@torch.no_grad()
def predict_probs(network: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    network.eval()
    return torch.cat([torch.softmax(network(images[i:i + batch_size]), dim=1)
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def inference_latency(network: nn.Module, images: torch.Tensor, repeats: int = 50,
                      batch_size: int = 256) -> dict[str, float]:
    """Median latency of one prediction, and batched throughput, on this machine's CPU."""
    network.eval()
    single = images[:1]
    network(single)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        network(single)
        times.append(time.perf_counter() - start)
    batch = images[:batch_size]
    start = time.perf_counter()
    for _ in range(5):
        network(batch)
    per_sample = (time.perf_counter() - start) / (5 * len(batch))
    return {"latency_ms_single": median(times) * 1000,
            "throughput_samples_per_s": 1 / per_sample if per_sample else 0.0}


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
