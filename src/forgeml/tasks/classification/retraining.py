"""How retraining judges an image classifier: correct (1) or not (0) on each image of today's
frozen test split, and the training class mix as the drift statistic's distribution."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from omegaconf import DictConfig


def per_example(cfg: DictConfig, uri: str, run_id: str) -> np.ndarray:
    from forgeml.data.tensors import load_split
    from forgeml.metrics import predict_probs
    from forgeml.saved_network import download_network

    network = download_network(uri, run_id)
    images, labels = load_split(cfg.paths.prepared, "test")
    probs = predict_probs(network, images, cfg.train.eval_batch_size)
    return (probs.argmax(1) == labels).numpy().astype(float)


def drift_counts(card: dict) -> tuple[str, list | None]:
    return "training class mix", card.get("class_counts", {}).get("train")
