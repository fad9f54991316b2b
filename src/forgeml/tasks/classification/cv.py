"""cv (classification): k-fold cross-validation of the pipeline's model over the prepared
train + val images (stratified folds; the test split is not touched)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml.artifacts import DATA_CARD, read_data_card
from forgeml.crossval.run import Candidate, Pooled, cross_validate
from forgeml.data.tensors import load_split
from forgeml.errors import ConfigError
from forgeml.io import sha256_file
from forgeml.tasks.classification import train as train_stage

MODEL = "model"  # cv.models entry: the pipeline's own model


def cv(cfg: DictConfig) -> dict:
    unknown = sorted(set(cfg.cv.models) - {MODEL})
    if unknown:
        raise ConfigError(f"cv.models {unknown}: an image pipeline cross-validates its own "
                          f"model only (cv.models: [{MODEL}]).")
    card = read_data_card(cfg)
    train_images, train_labels = load_split(cfg.paths.prepared, "train")
    val_images, val_labels = load_split(cfg.paths.prepared, "val")
    images = torch.cat([train_images, val_images])
    labels = torch.cat([train_labels, val_labels])

    def write_fold(out: Path, trained_on: np.ndarray, held_out: np.ndarray) -> None:
        fold_card = {**card, "split": {**card["split"], "protocol": "a fold of train + val"}}
        num_classes = len(card["class_names"])
        for name, index in (("train", trained_on), ("val", held_out)):
            index = torch.from_numpy(index)
            torch.save({"images": images[index].clone(), "labels": labels[index].clone()},
                       out / f"{name}.pt")
            fold_card["counts"] = {**fold_card["counts"], name: len(index)}
            fold_card["class_counts"] = {**fold_card["class_counts"], name: np.bincount(
                labels[index].numpy(), minlength=num_classes).tolist()}
        # The model normalises with its training images' statistics: the fold's own.
        fold_images = images[torch.from_numpy(trained_on)].double()
        fold_card["normalization"] = {"mean": float(fold_images.mean()),
                                      "std": float(fold_images.std(correction=0))}
        (out / "test.pt").write_bytes((Path(cfg.paths.prepared) / "test.pt").read_bytes())
        fold_card["files"] = {f"{n}.pt": sha256_file(out / f"{n}.pt")
                              for n in ("train", "val", "test")}
        fold_card["data_hash"] = hashlib.sha256("".join(
            fold_card["files"][f"{n}.pt"] for n in ("train", "val", "test")).encode()).hexdigest()
        (out / DATA_CARD).write_text(json.dumps(fold_card, indent=2, sort_keys=True))

    pooled = Pooled(labels.numpy(), None, write_fold)
    label = cfg.model._target_.rsplit(".", 1)[-1]
    return cross_validate(cfg, pooled, [Candidate(MODEL, label, cfg)], train_stage.train)


def summarize(cfg: DictConfig, record: dict) -> str:
    from forgeml.crossval.report import one_line

    return one_line(record)
