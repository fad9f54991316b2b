"""Classification metrics (torchmetrics), batched prediction, and inference latency."""

from __future__ import annotations

import time
from statistics import median

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
