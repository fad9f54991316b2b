"""cv (classification): k-fold cross-validation of the pipeline's model over the prepared
train + val images (stratified folds; the test split is not touched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

import forgeml.tasks.classification.train as train_stage
from forgeml.artifacts import read_data_card
from forgeml.crossval.run import Candidate, Pooled, cross_validate
from forgeml.data.tensors import load_split
from forgeml.errors import ConfigError
from forgeml.tasks.classification.prepare import SPLITS, split_statistics, write_splits

MODEL = "model"  # cv.models entry: the pipeline's own model


def cv(cfg: DictConfig) -> dict:
    unknown = sorted(set(cfg.cv.models) - {MODEL})
    if unknown:
        raise ConfigError(f"cv.models {unknown}: an image pipeline cross-validates its own "
                          f"model only (cv.models: [{MODEL}]).")
    label = cfg.model._target_.rsplit(".", 1)[-1]
    return cross_validate(cfg, lambda: _pool(cfg), [Candidate(MODEL, label, cfg)],
                          train_stage.train)


def _pool(cfg: DictConfig) -> Pooled:
    card = read_data_card(cfg)
    splits = {name: tuple(t.numpy() for t in load_split(cfg.paths.prepared, name))
              for name in SPLITS}
    images = np.concatenate([splits["train"][0], splits["val"][0]])
    labels = np.concatenate([splits["train"][1], splits["val"][1]])

    def write_fold(out: Path, trained_on: np.ndarray, held_out: np.ndarray) -> None:
        fold = {"train": (images[trained_on], labels[trained_on]),
                "val": (images[held_out], labels[held_out]), "test": splits["test"]}
        # The fold's own counts and normalisation (from its training images).
        write_splits(out, fold, {**card, **split_statistics(fold, len(card["class_names"])),
                                 "split": {**card["split"], "protocol": "a fold of train + val"}})

    return Pooled(labels, None, write_fold)


def summarize(cfg: DictConfig, record: dict) -> str:
    from forgeml.reporting.crossval import one_line

    return one_line(record)
