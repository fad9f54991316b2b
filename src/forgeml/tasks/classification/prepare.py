"""prepare (classification): load a real image source, validate, de-duplicate, split, write
tensors and a data card."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from forgeml.config import instantiate
from forgeml.data.base import ImageSource, validate_images
from forgeml.errors import DataError
from forgeml.io import atomic_dir, atomic_write_json, sha256_file

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def prepare(cfg: DictConfig) -> dict:
    """Write <paths.prepared>/{train,val,test}.pt and data_card.json; return the data card."""
    splits, card = build_splits(cfg)
    with atomic_dir(cfg.paths.prepared) as out:
        return write_splits(out, splits, card)


def build_splits(cfg: DictConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """The validated, de-duplicated, split images and their data card (files not yet named)."""
    data = cfg.data
    raw: ImageSource = instantiate(data.source, "data.source")
    shape, classes = tuple(data.image_shape), data.num_classes
    validate_images(raw.images, raw.labels, source=raw.name, image_shape=shape,
                    num_classes=classes)
    if raw.test_images is not None:
        validate_images(raw.test_images, raw.test_labels, source=f"{raw.name} (test split)",
                        image_shape=shape, num_classes=classes)

    removed: dict[str, int] = {}
    images, labels = raw.images, raw.labels
    test_images, test_labels = raw.test_images, raw.test_labels
    if data.dedupe:
        images, labels, removed["duplicates"], removed["conflicting_labels"] = dedupe(
            images, labels)
        if test_images is not None:
            test_images, test_labels, dup_test, conflict_test = dedupe(test_images, test_labels)
            removed["duplicates"] += dup_test
            removed["conflicting_labels"] += conflict_test
            keep = ~np.isin(_row_keys(test_images), _row_keys(images))
            removed["test_images_also_in_train"] = int((~keep).sum())
            test_images, test_labels = test_images[keep], test_labels[keep]

    splits = split(images, labels, test_images, test_labels, data.split)
    card = {
        "source": raw.name,
        "origin": raw.origin,
        "licence": raw.licence,
        "source_files": raw.files,
        "image_shape": list(shape),
        "class_names": list(data.class_names),
        **split_statistics(splits, classes),
        "removed": removed,
        "raw_count": len(raw.labels) + (0 if raw.test_labels is None else len(raw.test_labels)),
        "split": {
            "protocol": "official test split; val stratified from train"
            if raw.test_images is not None else "stratified train/val/test",
            "val_fraction": data.split.val_fraction,
            "test_fraction": data.split.test_fraction if raw.test_images is None else None,
            "seed": data.split.seed,
        },
    }
    return splits, card


Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def split_statistics(splits: Splits, num_classes: int) -> dict:
    """The data card's counts, and the training split's statistics (the model normalises its
    input with them)."""
    return {
        "counts": {name: len(y) for name, (_, y) in splits.items()},
        "class_counts": {
            name: np.bincount(y, minlength=num_classes).tolist() for name, (_, y) in splits.items()
        },
        "normalization": {"mean": float(splits["train"][0].mean()),
                          "std": float(splits["train"][0].std())},
    }


def write_splits(out: Path, splits: Splits, card: dict) -> dict:
    """<out>/{train,val,test}.pt and data_card.json with each file's SHA-256 and the data hash
    (the prepared format every image stage reads; cross-validation folds are written so too)."""
    for name, (x, y) in splits.items():
        torch.save({"images": torch.from_numpy(np.ascontiguousarray(x)),
                    "labels": torch.from_numpy(y)}, out / f"{name}.pt")
    card["files"] = {f"{name}.pt": sha256_file(out / f"{name}.pt") for name in SPLITS}
    card["data_hash"] = hashlib.sha256(
        "".join(card["files"][f"{name}.pt"] for name in SPLITS).encode()).hexdigest()
    atomic_write_json(out / "data_card.json", card)
    return card


def _row_keys(images: np.ndarray) -> np.ndarray:
    """One hashable bytes key per image, so numpy can find identical images."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


def dedupe(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Keep the first of each set of identical images; drop images seen with different labels.

    Returns (images, labels, exact duplicates removed, images removed for conflicting labels).
    """
    keys = _row_keys(images)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    # An image whose copies disagree on the label cannot be trusted: drop all its copies.
    label_min = np.full(len(first), np.iinfo(np.int64).max)
    label_max = np.full(len(first), np.iinfo(np.int64).min)
    np.minimum.at(label_min, inverse, labels)
    np.maximum.at(label_max, inverse, labels)
    conflicting = label_min != label_max
    keep = np.zeros(len(images), dtype=bool)
    keep[first[~conflicting]] = True
    n_conflicting = int(conflicting[inverse].sum())
    n_duplicates = len(images) - int(keep.sum()) - n_conflicting
    return images[keep], labels[keep], n_duplicates, n_conflicting


def split(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray | None,
          test_labels: np.ndarray | None, settings: DictConfig) -> dict[str, tuple]:
    """Stratified, seeded split; an official test split is kept as it is."""
    try:
        if test_images is None:
            rest_x, test_x, rest_y, test_y = train_test_split(
                images, labels, test_size=settings.test_fraction, stratify=labels,
                random_state=settings.seed)
        else:
            rest_x, rest_y, test_x, test_y = images, labels, test_images, test_labels
        held_out = settings.test_fraction if test_images is None else 0
        val_share = settings.val_fraction / (1 - held_out)
        train_x, val_x, train_y, val_y = train_test_split(
            rest_x, rest_y, test_size=val_share, stratify=rest_y, random_state=settings.seed)
    except ValueError as err:
        raise DataError(f"Cannot split the data with data.split={dict(settings)}: {err}") from None
    return {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}


def summarize(cfg: DictConfig, card: dict) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())
    return f"prepared {card['source']}: {counts}; removed {card['removed'] or 'nothing'}"
