"""evaluate (sentiment): the trained model and every baseline on the same test texts: accuracy,
macro F1, ROC-AUC and calibration (ECE) with bootstrap intervals, paired differences, accuracy by
review length, the most confident errors, and the cost of 1,000 predictions on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_run
from forgeml.bootstrap import (
    bootstrap_interval,
    bootstrap_metric,
    level,
    paired_bootstrap_difference,
)
from forgeml.data.text_batches import read_split
from forgeml.errors import DataError
from forgeml.io import atomic_write_json, atomic_write_text, staged_outputs
from forgeml.tasks.sentiment.predictor import (
    BASELINE_MODEL_DIR,
    MAIN,
    PREDICTOR_DIR,
    TextPredictor,
    load_predictor,
    seconds_per_1k,
)
from forgeml.tasks.sentiment.prepare import bucket_labels


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int) -> float:
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    return float(binary_calibration_error(torch.from_numpy(probs[:, 1].astype(np.float32)),
                                          torch.from_numpy(labels), n_bins=bins))


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int) -> list[dict]:
    """Per confidence bin: mean confidence vs accuracy (the calibration plot)."""
    confidence, predicted = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high) if low > 0.5 else \
            (confidence >= low) & (confidence <= high)
        if inside.any():
            rows.append({"confidence": float(confidence[inside].mean()),
                         "accuracy": float((predicted[inside] == labels[inside]).mean()),
                         "count": int(inside.sum())})
    return rows


def score(cfg: DictConfig, labels: np.ndarray, probs: np.ndarray) -> dict:
    ev = cfg.evaluate
    predicted = probs.argmax(1)
    correct = predicted == labels
    args = (ev.bootstrap_samples, ev.confidence, cfg.seed)

    def macro_f1(y, p):
        return f1_score(y, p, average="macro")

    return {
        "acc": float(correct.mean()), "acc_ci": bootstrap_interval(correct, *args),
        "f1_macro": float(macro_f1(labels, predicted)),
        "f1_macro_ci": bootstrap_metric(macro_f1, labels, predicted, *args),
        "roc_auc": float(roc_auc_score(labels, probs[:, 1])),
        "roc_auc_ci": bootstrap_metric(roc_auc_score, labels, probs[:, 1], *args),
        "ece": expected_calibration_error(labels, probs, ev.calibration_bins),
        "correct": correct,
    }


def load_models(cfg: DictConfig) -> dict[str, dict]:
    """The trained model first, then each baseline: name -> {label, predictor, record}."""
    run = read_run(cfg)
    models = {MAIN: {"label": _model_label(cfg.model), "record": run,
                     "predictor": load_predictor(Path(cfg.paths.models) / PREDICTOR_DIR)}}
    if cfg.get("baselines"):
        root = Path(cfg.paths.baselines)
        if not (root / "baselines.json").is_file():
            raise DataError(f"{root}/baselines.json not found: run the baselines stage first "
                            "(`dvc repro`).")
        records = json.loads((root / "baselines.json").read_text())
        for name in cfg.baselines:
            if name not in records:
                raise DataError(f"Baseline '{name}' is configured but was not trained: rerun the "
                                "baselines stage (`dvc repro`).")
            models[name] = {"label": records[name]["label"], "record": records[name],
                            "predictor": load_predictor(
                                root / name / BASELINE_MODEL_DIR / PREDICTOR_DIR)}
    return models


def _model_label(model: DictConfig) -> str:
    name = str(model._target_).rsplit(".", 1)[-1]
    if name == "MiniLMClassifier":
        start = "MiniLM fine-tuned" if model.pretrained else "MiniLM from scratch"
        return {"full": start, "frozen": "MiniLM frozen + head",
                "last_n": f"{start} (top {model.train_last_n} layers)"}[model.strategy]
    return {"TextCNN": "TextCNN from scratch", "tfidf_lr": "TF-IDF + logistic regression"
            }.get(name, name)


def evaluate(cfg: DictConfig) -> dict:
    """Write eval/<p>/{evaluation.json, predictions.csv}, metrics/<p>/test.json and
    plots/<p>/confusion.csv; log the headline metrics into the training run."""
    run = read_run(cfg)
    card = read_data_card(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    texts, labels = read_split(cfg.paths.prepared, "test")
    train_texts, train_labels = read_split(cfg.paths.prepared, "train")
    if not texts:
        raise DataError("The test split is empty: check data.split.")
    ev, class_names = cfg.evaluate, card["class_names"]
    words = np.array([len(t.split()) for t in texts])
    buckets = np.digitize(words, ev.length_buckets, right=True)
    cost_texts = texts[:ev.cost_texts]

    results: dict[str, dict] = {}
    probabilities: dict[str, np.ndarray] = {}
    models = load_models(cfg)
    entry_runs = {name: entry["record"] for name, entry in models.items()}
    for name, entry in models.items():
        predictor: TextPredictor = entry["predictor"]
        probs = predictor.predict_proba(texts)
        probabilities[name] = probs
        record = entry["record"]
        results[name] = {
            "label": entry["label"], **score(cfg, labels, probs),
            "seconds_per_1k": seconds_per_1k(predictor, cost_texts),
            "train_seconds": record.get("train_seconds"),
            "parameters": record.get("parameters"),
            "trainable_parameters": record.get("trainable_parameters"),
        }
    majority = int(np.bincount(train_labels, minlength=len(class_names)).argmax())
    prior = np.bincount(train_labels, minlength=len(class_names)) / len(train_labels)
    majority_probs = np.tile(prior, (len(labels), 1))
    results["majority"] = {"label": f"Always '{class_names[majority]}' (majority class)",
                           **score(cfg, labels, majority_probs), "seconds_per_1k": 0.0,
                           "train_seconds": 0.0, "parameters": 0, "trainable_parameters": 0}

    main = results[MAIN]
    for name, other in results.items():
        if name != MAIN:
            other["model_minus_this"] = paired_bootstrap_difference(
                main["correct"], other["correct"], ev.bootstrap_samples, ev.confidence, cfg.seed)
    bucket_names = bucket_labels(list(ev.length_buckets))
    slices = [{"bucket": bucket_names[b], "texts": int((buckets == b).sum()),
               **{name: float(r["correct"][buckets == b].mean()) if (buckets == b).any()
                  else None for name, r in results.items()}}
              for b in range(len(bucket_names))]

    probs = probabilities[MAIN]
    predicted, confidence = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:ev.confident_errors]
    result = {
        "n_test": len(labels), "class_names": class_names, "models": {},
        "order": list(results),  # the model first, then the baselines as configured
        "slices": slices,
        "confusion_matrix": confusion_matrix(labels, predicted,
                                             labels=range(len(class_names))).tolist(),
        "reliability": reliability(labels, probs, ev.calibration_bins),
        "confident_errors": [{"text": texts[i], "actual": class_names[labels[i]],
                              "predicted": class_names[predicted[i]],
                              "confidence": float(confidence[i])} for i in worst],
        "cost_texts": len(cost_texts),
    }
    for name, r in results.items():
        result["models"][name] = {k: v for k, v in r.items() if k != "correct"}

    headline = {"acc": main["acc"], "acc_ci_low": main["acc_ci"][0],
                "acc_ci_high": main["acc_ci"][1], "f1_macro": main["f1_macro"],
                "roc_auc": main["roc_auc"], "ece": main["ece"],
                "seconds_per_1k": main["seconds_per_1k"]}
    for name, r in results.items():
        if name != MAIN:
            headline[f"{name}_acc"] = r["acc"]
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        atomic_write_text(out / "predictions.csv", "index,label,predicted,confidence,correct\n"
                          + "".join(f"{i},{y},{p},{c:.6f},{int(y == p)}\n" for i, (y, p, c) in
                                    enumerate(zip(labels.tolist(), predicted.tolist(),
                                                  confidence.tolist(), strict=True))))
        atomic_write_json(out / "evaluation.json", result)
        staged.write_text(Path(cfg.paths.plots) / "confusion.csv", "actual,predicted\n" + "".join(
            f"{class_names[a]},{class_names[p]}\n" for a, p in zip(labels, predicted,
                                                                    strict=True)))
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        tracking.log_metrics(uri, run["run_id"], {f"test/{k}": v for k, v in headline.items()})
        tracking.log_artifacts(uri, run["run_id"], [metrics_file, out], "evaluation")
        for name, r in results.items():  # the baselines under the model in MLflow's UI
            if name != MAIN:
                trained_in = (entry_runs.get(name) or {}).get("run_id")
                tracking.log_child_run(
                    uri, run["run_id"], f"baseline/{name}", f"baseline: {r['label']}",
                    {"test/acc": r["acc"], "test/f1_macro": r["f1_macro"],
                     "test/roc_auc": r["roc_auc"], "test/ece": r["ece"],
                     "test/seconds_per_1k": r["seconds_per_1k"]},
                    {"forgeml.kind": "baseline",
                     **({"forgeml.trained_in": trained_in} if trained_in else {})})
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    main = result["models"][MAIN]
    low, high = main["acc_ci"]
    others = ", ".join(f"{result['models'][n]['label']} {result['models'][n]['acc']:.4f}"
                       for n in result["order"] if n != MAIN)
    return (f"test accuracy {main['acc']:.4f} ({ci} CI {low:.4f}-{high:.4f}), macro F1 "
            f"{main['f1_macro']:.4f}, ROC-AUC {main['roc_auc']:.4f}; {others}")
