"""How retraining judges a recommender: whether each held-out choice of today's frozen test set
is in the model's top K, and users' training-activity buckets as the drift distribution."""

from __future__ import annotations

import json

import numpy as np
from omegaconf import DictConfig


def per_example(cfg: DictConfig, uri: str, run_id: str) -> np.ndarray:
    """Today's ids are mapped to the model's own (by original id): an item the model never saw
    scores lowest, a user it never saw is a miss."""
    import torch

    from forgeml.data.interactions import TEST, load_interactions
    from forgeml.models.ranker import score_candidates
    from forgeml.ranking_metrics import hit_rate, rank_of_target
    from forgeml.saved_network import download_network
    from forgeml.tracking import download

    network = download_network(uri, run_id)
    catalog = json.loads(download(uri, run_id, "recommender/catalog.json")
                         .read_text(encoding="utf-8"))
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


def drift_counts(card: dict) -> tuple[str, list | None]:
    return "users' training-activity buckets", card.get("activity_histogram", {}).get("users")
