"""Score any logged model of a pipeline on the CURRENT frozen evaluation set, one value per test
example, so that challenger and champion are compared on exactly the same examples even when the
champion was trained on older data; and a data-drift statistic between their training data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml.errors import ConfigError


def metric_name(cfg: DictConfig) -> str:
    task = cfg.pipeline.task
    if task == "classification":
        return "acc"
    if task == "recsys":
        return f"hr_at_{cfg.evaluate.k}"
    raise ConfigError(f"Retraining supports the classification and recsys tasks; pipeline "
                      f"'{cfg.pipeline.name}' is a {task} pipeline.")


def _load(uri: str, run_id: str):
    from forgeml.saved_network import download_network

    return download_network(uri, run_id)


def _artifact(uri: str, run_id: str, path: str) -> Path:
    from forgeml.tracking import download

    return download(uri, run_id, path)


def per_example(cfg: DictConfig, uri: str, run_id: str) -> np.ndarray:
    """1/0 per test example: correct (classification) or hit in the top K (recsys)."""
    metric_name(cfg)
    network = _load(uri, run_id)
    if cfg.pipeline.task == "classification":
        from forgeml.data.tensors import load_split
        from forgeml.metrics import predict_probs

        images, labels = load_split(cfg.paths.prepared, "test")
        probs = predict_probs(network, images, cfg.train.eval_batch_size)
        return (probs.argmax(1) == labels).numpy().astype(float)
    return _recsys_hits(cfg, network, json.loads(
        _artifact(uri, run_id, "recommender/catalog.json").read_text(encoding="utf-8")))


def _recsys_hits(cfg: DictConfig, network, catalog: dict) -> np.ndarray:
    """Map today's ids to the model's own (by original id): an item the model never saw scores
    lowest, a user it never saw is a miss."""
    import torch

    from forgeml.data.interactions import TEST, load_interactions
    from forgeml.models.ranker import score_candidates
    from forgeml.ranking_metrics import hit_rate, rank_of_target

    data = load_interactions(cfg.paths.prepared)
    users, candidates = data.candidates(TEST)
    user_index = {u: i for i, u in enumerate(catalog["user_ids"])}
    item_index = {u: i for i, u in enumerate(catalog["item_ids"])}
    to_user = np.array([user_index.get(u, -1) for u in data.catalog["user_ids"]])
    to_item = np.array([item_index.get(i, -1) for i in data.catalog["item_ids"]])
    model_users, model_items = to_user[users], to_item[candidates]
    with torch.no_grad():
        scores = score_candidates(network.eval(), torch.from_numpy(np.maximum(model_users, 0)),
                                  torch.from_numpy(np.maximum(model_items, 0))).numpy()
    scores[model_items < 0] = -np.inf
    ranks = rank_of_target(scores, np.random.default_rng(cfg.seed))
    hits = hit_rate(ranks, cfg.evaluate.k)
    hits[model_users < 0] = 0.0
    return hits


def data_card(uri: str, run_id: str) -> dict:
    return json.loads(_artifact(uri, run_id, "config/data_card.json").read_text())


def drift(cfg: DictConfig, reference: dict, current: dict) -> dict:
    """Population stability index between the reference (champion's) and current training
    data: of the class mix (classification) or of users' activity buckets (recsys)."""
    if cfg.pipeline.task == "classification":
        ref, cur = reference["class_counts"]["train"], current["class_counts"]["train"]
        what = "training class mix"
    else:
        ref = reference.get("activity_histogram", {}).get("users")
        cur = current.get("activity_histogram", {}).get("users")
        what = "users' training-activity buckets"
    if not ref or not cur or len(ref) != len(cur):
        return {"statistic": f"PSI of the {what}", "psi": None,
                "note": "the reference data card has no comparable distribution"}
    return {"statistic": f"PSI of the {what}", "psi": psi(np.asarray(ref), np.asarray(cur)),
            "reference": list(ref), "current": list(cur),
            "reference_rows": reference["counts"]["train"], "current_rows":
            current["counts"]["train"]}


def psi(reference: np.ndarray, current: np.ndarray, eps: float = 1e-4) -> float:
    """sum((q - p) * ln(q / p)) over bins; < 0.1 stable, 0.1-0.25 moderate, > 0.25 large."""
    p = np.clip(reference / max(reference.sum(), 1), eps, None)
    q = np.clip(current / max(current.sum(), 1), eps, None)
    value = float(((q - p) * np.log(q / p)).sum())
    return value if math.isfinite(value) else float("inf")
