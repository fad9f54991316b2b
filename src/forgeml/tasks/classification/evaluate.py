"""evaluate (classification): test-split metrics with intervals, a baseline on the same split,
MLflow logging."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_run
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.data.tensors import load_split
from forgeml.io import atomic_write_json, atomic_write_text, staged_outputs
from forgeml.metrics import classification_metrics, inference_latency, predict_probs
from forgeml.tasks.classification.network import load_network

log = logging.getLogger(__name__)
BASELINE_MAX_TRAIN = 10_000  # keeps the baseline's fit under a minute on 2 cores


def evaluate(cfg: DictConfig) -> dict:
    """Write metrics/<p>/test.json, plots/<p>/confusion.csv and eval/<p>/; log to the run."""
    run = read_run(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    network = load_network(cfg)
    images, labels = load_split(cfg.paths.prepared, "test")
    ev = cfg.evaluate

    probs = predict_probs(network, images, cfg.train.eval_batch_size)
    predicted = probs.argmax(1)
    result = classification_metrics(probs, labels, cfg.data.num_classes, ev.calibration_bins)
    correct = (predicted == labels).numpy()
    result["acc_ci"] = bootstrap_interval(correct, ev.bootstrap_samples, ev.confidence, cfg.seed)
    result["n_test"] = len(labels)
    result["cost"] = inference_latency(network, images)

    if ev.membership_examples:
        result["membership"] = membership_attack(cfg, network, probs, labels)
    if ev.baseline:
        result["baseline"] = logistic_baseline(cfg, images, labels)
        base_correct = np.asarray(result["baseline"].pop("correct"))
        result["baseline"]["vs_model"] = paired_bootstrap_difference(
            correct, base_correct, ev.bootstrap_samples, ev.confidence, cfg.seed)

    headline = {
        "acc": result["acc"], "acc_ci_low": result["acc_ci"][0],
        "acc_ci_high": result["acc_ci"][1], "loss": result["loss"],
        "f1_macro": result["f1_macro"], "precision_macro": result["precision_macro"],
        "recall_macro": result["recall_macro"], "ece": result["ece"],
        "latency_ms_single": result["cost"]["latency_ms_single"],
    }
    if "baseline" in result:
        headline["baseline_acc"] = result["baseline"]["acc"]
    if "membership" in result:
        headline["membership_auc"] = result["membership"]["auc"]
    names = list(cfg.data.class_names)
    confusion = "actual,predicted\n" + "".join(
        f"{names[a]},{names[p]}\n" for a, p in zip(labels.tolist(), predicted.tolist(),
                                                   strict=True))
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        confidence = probs.max(1).values
        atomic_write_text(out / "predictions.csv", "index,label,predicted,confidence\n" + "".join(
            f"{i},{y},{p},{c:.6f}\n" for i, (y, p, c) in enumerate(zip(
                labels.tolist(), predicted.tolist(), confidence.tolist(), strict=True))))
        atomic_write_json(out / "evaluation.json", result)
        staged.write_text(Path(cfg.paths.plots) / "confusion.csv", confusion)
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        # Logged before the outputs are committed: outputs never describe a run MLflow lacks.
        tracking.log_metrics(uri, run["run_id"], {f"test/{k}": v for k, v in headline.items()})
        tracking.log_artifacts(uri, run["run_id"], [metrics_file, out], "evaluation")
    return result


def membership_attack(cfg: DictConfig, network: torch.nn.Module, test_probs: torch.Tensor,
                      test_labels: torch.Tensor) -> dict:
    """The loss-threshold attack on as many training examples as held-out test examples."""
    from forgeml.privacy.membership import loss_threshold_attack, sample_indices

    images, labels = load_split(cfg.paths.prepared, "train")
    size = min(cfg.evaluate.membership_examples, len(labels), len(test_labels))
    members = torch.from_numpy(sample_indices(len(labels), size, cfg.seed))
    others = torch.from_numpy(sample_indices(len(test_labels), size, cfg.seed + 1))
    member_probs = predict_probs(network, images[members], cfg.train.eval_batch_size)
    ev = cfg.evaluate
    return loss_threshold_attack(_losses(member_probs, labels[members]),
                                 _losses(test_probs[others], test_labels[others]),
                                 ev.bootstrap_samples, ev.confidence, cfg.seed)


def _losses(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-example cross-entropy from predicted probabilities."""
    picked = probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)
    return (-torch.log(picked.clamp_min(1e-12))).numpy()


def logistic_baseline(cfg: DictConfig, test_images: torch.Tensor,
                      test_labels: torch.Tensor) -> dict:
    """Multinomial logistic regression on raw pixels, trained on the same train split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images, labels = load_split(cfg.paths.prepared, "train")
    x, y = images.flatten(1).numpy(), labels.numpy()
    if len(y) > BASELINE_MAX_TRAIN:
        pick = np.random.default_rng(cfg.seed).choice(len(y), BASELINE_MAX_TRAIN, replace=False)
        x, y = x[pick], y[pick]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200, C=0.1))
    model.fit(x, y)
    correct = model.predict(test_images.flatten(1).numpy()) == test_labels.numpy()
    ev = cfg.evaluate
    return {"name": "logistic regression (pixels)", "train_samples": len(y),
            "acc": float(correct.mean()),
            "acc_ci": bootstrap_interval(correct, ev.bootstrap_samples, ev.confidence, cfg.seed),
            "correct": correct.tolist()}


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    low, high = result["acc_ci"]
    return (f"test accuracy {result['acc']:.4f} ({ci} CI {low:.4f}-{high:.4f}), macro F1 "
            f"{result['f1_macro']:.4f}")
