"""prepare (sentiment): clean labelled snippets (whitespace, empties, duplicates), split them
stratified with a fixed seed, and write the splits plus a data card."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from forgeml.config import instantiate
from forgeml.data.reviews import Reviews
from forgeml.errors import DataError
from forgeml.io import atomic_dir, atomic_write_json, atomic_write_text, sha256_file

SPLITS = ("train", "val", "test")


def normalise(text: object) -> str:
    """Unicode NFC, and every run of whitespace (newlines, tabs, nbsp) to one space."""
    if not isinstance(text, str):
        return ""
    return " ".join(unicodedata.normalize("NFC", text).split())


def clean(reviews: Reviews, class_names: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows with a known label and non-empty text, each text once. Texts that appear with
    different labels are dropped entirely (no right answer to learn)."""
    frame = reviews.frame.copy()
    removed = dict(reviews.notes)
    unknown = sorted(set(frame["label"].dropna().astype(str)) - set(class_names))
    if unknown:
        raise DataError(f"Labels {unknown[:10]} are not in data.class_names {class_names}; "
                        "map or drop them, or list them in data.class_names.")
    frame["text"] = frame["text"].map(normalise)
    empty = frame["text"] == ""
    removed["empty text"] = int(empty.sum())
    frame = frame.loc[~empty]
    conflicting = frame.groupby("text")["label"].transform("nunique") > 1
    removed["same text with different labels"] = int(conflicting.sum())
    frame = frame.loc[~conflicting]
    duplicated = frame.duplicated("text")
    removed["duplicate text"] = int(duplicated.sum())
    frame = frame.loc[~duplicated].reset_index(drop=True)
    frame["label"] = frame["label"].map({name: i for i, name in enumerate(class_names)})
    return frame, removed


def split_stratified(frame: pd.DataFrame, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    counts = frame["label"].value_counts()
    held_out = val_fraction + test_fraction
    if len(frame) * min(val_fraction, test_fraction) < len(counts) or counts.min() < 3:
        raise DataError(f"{len(frame)} texts ({counts.to_dict()} per label) are too few for "
                        f"val_fraction={val_fraction} and test_fraction={test_fraction}: every "
                        "split needs each label at least once.")
    train, rest = train_test_split(frame, test_size=held_out, stratify=frame["label"],
                                   random_state=seed)
    val, test = train_test_split(rest, test_size=test_fraction / held_out,
                                 stratify=rest["label"], random_state=seed)
    return {"train": train, "val": val, "test": test}


def length_summary(words: pd.Series, buckets: list[int]) -> dict:
    edges = [0, *buckets, np.inf]
    labels = bucket_labels(buckets)
    counts = pd.cut(words, edges, labels=labels, right=True).value_counts()
    return {"words_min": int(words.min()), "words_median": float(words.median()),
            "words_p90": float(words.quantile(0.9)), "words_max": int(words.max()),
            "buckets": {label: int(counts.get(label, 0)) for label in labels}}


def bucket_labels(buckets: list[int]) -> list[str]:
    edges = [0, *buckets]
    return [f"{lo + 1}-{hi} words" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + \
        [f"over {buckets[-1]} words"]


def prepare(cfg: DictConfig) -> dict:
    """Write <paths.prepared>/{train,val,test}.jsonl and data_card.json."""
    data = cfg.data
    class_names = list(data.class_names)
    reviews: Reviews = instantiate(data.source, "data.source")
    raw_rows = len(reviews.frame) + sum(reviews.notes.values())
    frame, removed = clean(reviews, class_names)
    anonymisation = anonymise(frame, data.anonymise, data.source)
    if frame.empty:
        raise DataError(f"No labelled text is left in {reviews.origin} after cleaning "
                        f"(removed: {removed}).")
    split = data.split
    splits = split_stratified(frame, split.val_fraction, split.test_fraction, split.seed)
    frame["words"] = frame["text"].str.split().str.len()

    buckets = list(cfg.evaluate.length_buckets)
    card = {
        "name": data.name, "source": reviews.origin, "licence": reviews.licence,
        "class_names": class_names,
        "raw_rows": raw_rows, "kept": len(frame), "removed": removed,
        "split": {"method": "stratified by label", "seed": split.seed,
                  "val_fraction": split.val_fraction, "test_fraction": split.test_fraction},
        "counts": split_counts(splits, class_names),
        "length": length_summary(frame["words"], buckets),
    }
    if anonymisation:
        card["anonymisation"] = anonymisation
    if frame["group"].notna().any():  # e.g. the same movie reviewed in train and test
        train_groups = set(splits["train"]["group"].dropna())
        card["test_groups_also_in_train"] = int(splits["test"]["group"].dropna()
                                                .isin(train_groups).sum())
    rows = {name: part[["text", "label"]].assign(id=part.index)[["id", "text", "label"]]
            for name, part in splits.items()}
    with atomic_dir(cfg.paths.prepared) as out:
        return write_splits(out, rows, card)


def masks_pii(anonymise: DictConfig, source: DictConfig) -> bool:
    """auto: a team's own text (the `table` source), not the shipped public corpus."""
    if anonymise.mask_pii == "auto":
        return str(source.get("_target_", "")).endswith(".table")
    return bool(anonymise.mask_pii)


def anonymise(frame: pd.DataFrame, settings: DictConfig, source: DictConfig) -> dict | None:
    """Mask personal data in the texts in place; what was masked and the rare groups, for
    the data card (None when masking is off)."""
    if not masks_pii(settings, source):
        return None
    from forgeml.privacy.pii import PLACEHOLDERS, mask_all

    frame["text"], masked = mask_all(frame["text"].tolist())
    sizes = frame["group"].dropna().value_counts()
    with_pii = frame["text"].map(lambda text: any(p in text for p in PLACEHOLDERS.values()))
    return {"pii_masked": masked, "texts_with_pii": int(with_pii.sum()),
            "min_group_size": settings.min_group_size, "groups": int(len(sizes)),
            "groups_below_k": int((sizes < settings.min_group_size).sum())}


def split_counts(splits: dict[str, pd.DataFrame], class_names: list[str]) -> dict:
    return {name: {class_names[k]: int(v) for k, v in
                   part["label"].value_counts().sort_index().items()}
            for name, part in splits.items()}


def write_splits(out: Path, rows: dict[str, pd.DataFrame], card: dict) -> dict:
    """<out>/{train,val,test}.jsonl (id, text, label; the id is the row of the cleaned source)
    and data_card.json with the data hash (the prepared format every sentiment stage reads;
    cross-validation folds are written so too)."""
    for name in SPLITS:
        atomic_write_text(out / f"{name}.jsonl", rows[name].to_json(
            orient="records", lines=True, force_ascii=False))
    card["data_hash"] = "sha256:" + hashlib.sha256("".join(
        sha256_file(out / f"{name}.jsonl") for name in SPLITS).encode()).hexdigest()
    atomic_write_json(out / "data_card.json", card)
    return card


def summarize(cfg: DictConfig, card: dict) -> str:
    sizes = ", ".join(f"{name} {sum(c.values()):,}" for name, c in card["counts"].items())
    gone = sum(v for k, v in card["removed"].items() if not k.startswith("category"))
    return f"{card['name']}: {card['kept']:,} texts ({sizes}); {gone} removed by cleaning"
