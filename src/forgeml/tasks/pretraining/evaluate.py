"""evaluate (pretraining): every fine-tuned model on the official test split — accuracy with a
bootstrap interval, paired differences on the same test images (pre-trained − scratch, linear
probe − scratch, pre-trained − seed CNN) per label fraction, the label-efficiency curve, and how
many labels the scratch network needs to match the pre-trained one at the fewest labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from forgeml import tracking
from forgeml.artifacts import load_best_weights, read_data_card, read_run
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.data.tensors import load_split
from forgeml.io import atomic_write_json, staged_outputs
from forgeml.metrics import predict_probs
from forgeml.models.classifier import build_network
from forgeml.models.registry import instantiate_network
from forgeml.tasks.pretraining.finetune import RESULTS_FILE, finetuned_dir
from forgeml.tasks.pretraining.prepare import subset_key

PER_EXAMPLE_FILE = "correct.npz"  # 0/1 per test image, one array per fine-tuned model
CURVE_FILE = "label_efficiency.csv"
# (name in results, minuend, subtrahend): paired on the same test images, per fraction.
COMPARISONS = (("pretrained_vs_scratch", "pretrained", "scratch"),
               ("probe_vs_scratch", "probe", "scratch"),
               ("pretrained_vs_cnn", "pretrained", "cnn"))


def read_per_example(path: Path, name: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as saved:
        return saved[name].astype(float)


def _load(cfg: DictConfig, folder: Path, card: dict):
    saved = OmegaConf.load(folder / "config.yaml")
    network = build_network(instantiate_network(saved.model), **card["normalization"])
    return load_best_weights(OmegaConf.create({"paths": {"models": str(folder)}}), network)


def labels_to_match(target: float, curve: list[tuple[int, float]]) -> dict:
    """Where an increasing-in-labels accuracy curve first reaches `target`: interpolated
    linearly in log(labels) between measured points; open-ended beyond them."""
    if not curve:
        return {"labels": None, "bound": "none"}
    if curve[0][1] >= target:
        return {"labels": curve[0][0], "bound": "at_most"}
    for (n0, a0), (n1, a1) in zip(curve, curve[1:], strict=False):
        if a1 >= target:
            share = (target - a0) / (a1 - a0) if a1 > a0 else 1.0
            return {"labels": round(math.exp(math.log(n0) + share * (math.log(n1) - math.log(n0)))),
                    "bound": "interpolated"}
    return {"labels": curve[-1][0], "bound": "more_than"}


def evaluate(cfg: DictConfig) -> dict:
    """Write eval/<p>/, metrics/<p>/test.json and plots/<p>/label_efficiency.csv; log them."""
    parent = read_run(cfg)["run_id"]
    card = read_data_card(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    folder = finetuned_dir(cfg)
    finetuned = json.loads((folder / RESULTS_FILE).read_text())["children"]
    images, labels = load_split(cfg.paths.prepared, "test")
    ev = cfg.evaluate
    correct: dict[str, np.ndarray] = {}
    models = []
    for child in finetuned:
        network = _load(cfg, folder / child["name"], card)
        hits = (predict_probs(network, images, cfg.train.eval_batch_size).argmax(1)
                == labels).numpy()
        correct[child["name"]] = hits
        models.append({**{k: child[k] for k in ("name", "model", "label", "fraction", "labels",
                                                "steps", "run_id", "best_val_acc",
                                                "train_seconds", "parameters",
                                                "trainable_parameters")},
                       "acc": float(hits.mean()),
                       "acc_ci": bootstrap_interval(hits, ev.bootstrap_samples, ev.confidence,
                                                    cfg.seed)})
    fractions = sorted({m["fraction"] for m in models})
    by = {(m["model"], m["fraction"]): m for m in models}
    differences = {}
    for name, a, b in COMPARISONS:
        for fraction in fractions:
            if (a, fraction) in by and (b, fraction) in by:
                differences.setdefault(name, {})[subset_key(fraction)] = \
                    paired_bootstrap_difference(correct[by[a, fraction]["name"]],
                                                correct[by[b, fraction]["name"]],
                                                ev.bootstrap_samples, ev.confidence, cfg.seed)
    curves = {kind: [(by[kind, f]["labels"], by[kind, f]["acc"]) for f in fractions
                     if (kind, f) in by] for kind in dict.fromkeys(m["model"] for m in models)}
    fewest = fractions[0]
    match = None
    if ("pretrained", fewest) in by and "scratch" in curves:
        match = {"target": by["pretrained", fewest]["acc"], "fraction": fewest,
                 **labels_to_match(by["pretrained", fewest]["acc"], curves["scratch"])}
    result = {"models": models, "differences": differences, "curves": curves,
              "scratch_labels_to_match": match, "n_test": len(labels),
              "confidence": ev.confidence}
    headline = {f"acc_{m['name']}": m["acc"] for m in models}
    headline |= {f"acc_{m['name']}_ci_low": m["acc_ci"][0] for m in models}
    headline |= {f"acc_{m['name']}_ci_high": m["acc_ci"][1] for m in models}
    headline |= {f"gain_{key}": d["difference"]
                 for key, d in differences.get("pretrained_vs_scratch", {}).items()}
    curve_csv = "model,labels,acc\n" + "".join(
        f"{m['model']},{m['labels']},{m['acc']:.6f}\n" for m in models)
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        np.savez(out / PER_EXAMPLE_FILE, **{k: v.astype(np.uint8) for k, v in correct.items()})
        atomic_write_json(out / "evaluation.json", result)
        staged.write_text(Path(cfg.paths.plots) / CURVE_FILE, curve_csv)
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        # Logged before the outputs are committed: outputs never describe a run MLflow lacks.
        tracking.log_metrics(uri, parent, {f"test/{k}": v for k, v in headline.items()})
        for m in models:
            tracking.log_metrics(uri, m["run_id"], {"test/acc": m["acc"],
                                                    "test/acc_ci_low": m["acc_ci"][0],
                                                    "test/acc_ci_high": m["acc_ci"][1]})
        tracking.log_artifacts(uri, parent, [metrics_file, out], "evaluation")
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    rows = ", ".join(f"{m['name']} {m['acc']:.4f}" for m in result["models"])
    gains = result["differences"].get("pretrained_vs_scratch", {})
    ci = level(cfg.evaluate.confidence)
    text = ", ".join(f"{key} {d['difference'] * 100:+.1f} points ({ci} CI "
                     f"{d['low'] * 100:+.1f} to {d['high'] * 100:+.1f})"
                     for key, d in gains.items())
    return f"test accuracy: {rows}; pre-trained vs scratch: {text}"
