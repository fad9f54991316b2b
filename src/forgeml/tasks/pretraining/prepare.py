"""prepare (pretraining): the image pipelines' validated, de-duplicated splits (train: the
unlabelled pool the masked autoencoder learns from; val: model selection; test: the official
test split), plus the labelled subsets of the training split that fine-tuning may use:
stratified, seeded and nested (each smaller subset inside every larger one)."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml.errors import DataError
from forgeml.io import atomic_dir
from forgeml.tasks.classification.prepare import build_splits, write_splits

SUBSETS_FILE = "label_subsets.pt"


def subset_key(fraction: float) -> str:
    """A subset's name in files and metrics: 0.01 -> "1pct"."""
    return f"{fraction * 100:g}pct".replace(".", "_")


def label_subsets(labels: np.ndarray, fractions: list[float], num_classes: int,
                  seed: int) -> dict[float, np.ndarray]:
    """Indices into `labels` for each fraction: per class, a seeded random order of its
    examples of which each subset takes the first round(fraction x class size), at least one.
    Nested by construction, and each class keeps its share."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    subsets = {}
    for fraction in fractions:
        wanted = round(fraction * len(labels))
        if wanted < num_classes:
            raise DataError(
                f"labels.fractions: {fraction:g} of {len(labels):,} training images is {wanted} "
                f"labelled images, fewer than the {num_classes} classes; use a fraction of at "
                f"least {num_classes / len(labels):.2g}.")
        taken = [order[:max(1, round(fraction * len(order)))] for order in orders]
        subsets[fraction] = np.sort(np.concatenate(taken))
    return subsets


def prepare(cfg: DictConfig) -> dict:
    """Write <paths.prepared>/{train,val,test}.pt, label_subsets.pt and data_card.json."""
    splits, card = build_splits(cfg)
    train_labels = splits["train"][1]
    subsets = label_subsets(train_labels, list(cfg.labels.fractions), cfg.data.num_classes,
                            int(cfg.labels.seed))
    card["unlabelled_pool"] = len(train_labels)
    card["label_subsets"] = {
        subset_key(fraction): {
            "fraction": fraction, "count": len(index),
            "class_counts": np.bincount(train_labels[index],
                                        minlength=cfg.data.num_classes).tolist()}
        for fraction, index in subsets.items()}
    card["label_subsets_seed"] = int(cfg.labels.seed)
    with atomic_dir(cfg.paths.prepared) as out:
        torch.save({subset_key(f): torch.from_numpy(index) for f, index in subsets.items()},
                   out / SUBSETS_FILE)
        return write_splits(out, splits, card)


def summarize(cfg: DictConfig, card: dict) -> str:
    subsets = ", ".join(f"{key} {s['count']:,}" for key, s in card["label_subsets"].items())
    return (f"prepared {card['source']}: unlabelled pool {card['unlabelled_pool']:,}, labelled "
            f"subsets {subsets}; val {card['counts']['val']:,}, test {card['counts']['test']:,}")
