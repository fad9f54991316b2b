"""The classification network: built from config for the data it was prepared with, and loaded from
the best checkpoint of the last train stage (what evaluate scores). No Lightning."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from forgeml.artifacts import load_best_weights, read_data_card
from forgeml.models.classifier import build_network
from forgeml.models.registry import instantiate_network


def make_network(cfg: DictConfig, card: dict) -> nn.Module:
    model = instantiate_network(cfg.model)
    if cfg.privacy.enabled:  # checked (and fixed, if asked) as built: evaluate loads the same
        from forgeml.privacy.layers import private_network

        model = private_network(model, cfg.privacy.fix_layers)
    return build_network(model, **card["normalization"])


def load_network(cfg: DictConfig) -> nn.Module:
    """The best checkpoint of the last train stage, as an eval-mode nn.Module."""
    return load_best_weights(cfg, make_network(cfg, read_data_card(cfg)))
