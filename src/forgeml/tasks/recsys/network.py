"""The recommender network: built from config for the data it was prepared with, loaded from the
best checkpoint of the last train stage (what evaluate scores); the items each user has seen.
No Lightning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from torch import nn

from forgeml.artifacts import load_best_weights, read_data_card
from forgeml.models.registry import instantiate_network


def make_network(cfg: DictConfig, card: dict) -> nn.Module:
    network = instantiate_network(cfg.model, num_users=card["users"], num_items=card["items"])
    if cfg.privacy.enabled:  # checked (and fixed, if asked) as built: evaluate loads the same
        from forgeml.privacy.layers import private_network

        network = private_network(network, cfg.privacy.fix_layers)
    return network


def load_network(cfg: DictConfig) -> nn.Module:
    return load_best_weights(cfg, make_network(cfg, read_data_card(cfg)))


def seen_items(path: Path, n_users: int) -> list[set[int]]:
    from forgeml.errors import ModelFileError

    try:
        with np.load(path, allow_pickle=False) as arrays:
            users, items = arrays["user"].tolist(), arrays["item"].tolist()
        out: list[set[int]] = [set() for _ in range(n_users)]
        for u, i in zip(users, items, strict=True):
            out[u].add(i)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ModelFileError(f"{path} is not the recommender's seen-items file "
                             f"({str(err).splitlines()[0][:160]}); refusing it.") from None
    return out
