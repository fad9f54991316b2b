"""The language-model network: built from config for the data it was prepared with, and loaded from
the best checkpoint of the last train stage (what evaluate scores). No Lightning."""

from __future__ import annotations

from omegaconf import DictConfig

from forgeml.artifacts import load_best_weights, read_data_card
from forgeml.models.gpt import GPT
from forgeml.models.registry import instantiate_network


def make_network(cfg: DictConfig, card: dict) -> GPT:
    return instantiate_network(cfg.model, vocab_size=card["tokenizer"]["vocab_size"])


def load_network(cfg: DictConfig) -> GPT:
    """The best checkpoint of the last train stage, in eval mode."""
    return load_best_weights(cfg, make_network(cfg, read_data_card(cfg)))
