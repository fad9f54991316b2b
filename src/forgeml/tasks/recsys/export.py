"""The exported recommender: user codes in (`users`), the score of every catalogue item out
(`scores`, batch x items); the catalogue and each user's seen items travel with it, so the
endpoint ranks unseen items without torch."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from forgeml.models.ranker import score_candidates
from forgeml.serving.export import Exportable


class AllItemScores(nn.Module):
    """(B,) user codes -> (B, items) logits of a (user, item) network."""

    def __init__(self, network: nn.Module, n_items: int):
        super().__init__()
        self.network = network.eval()
        self.register_buffer("items", torch.arange(n_items), persistent=False)

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return score_candidates(self.network, users, self.items.expand(users.shape[0], -1))


def exportable(uri: str, run_id: str) -> Exportable:
    from forgeml.tasks.recsys.recommend import logged_files

    network, folder, catalog = logged_files(uri, run_id)
    return Exportable(
        module=AllItemScores(network, len(catalog["item_ids"])), input_names=["users"],
        output_name="scores", dynamic_axes={"users": {0: "batch"}},
        meta={"users": len(catalog["user_ids"]), "items": len(catalog["item_ids"])},
        files={"catalog.json": folder / "catalog.json", "seen.npz": folder / "seen.npz"},
        tolerance=1e-3)  # logits, not probabilities


def test_inputs(cfg: DictConfig, count: int) -> dict[str, np.ndarray]:
    from forgeml.data.interactions import TEST, load_interactions

    data = load_interactions(cfg.paths.prepared)
    return {"users": data.user[data.rows(TEST)][:count].astype(np.int64)}
