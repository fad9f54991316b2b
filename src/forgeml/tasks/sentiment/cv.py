"""cv (sentiment): k-fold cross-validation of the cheaper models of `baselines` (TF-IDF +
logistic regression, TextCNN, ...) or of the pipeline's own model, over the prepared train +
val texts; folds are stratified and grouped where the source has groups (the reviews of one
movie are all in one fold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

import forgeml.tasks.sentiment.train as train_stage
from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.crossval.run import Candidate, Pooled, cross_validate
from forgeml.errors import ConfigError, DataError
from forgeml.tasks.sentiment.baselines import baseline_config
from forgeml.tasks.sentiment.predictor import MAIN
from forgeml.tasks.sentiment.prepare import SPLITS, clean, split_counts, write_splits


def cv(cfg: DictConfig) -> dict:
    return cross_validate(cfg, lambda: _pool(cfg), _candidates(cfg), train_stage.train)


def _pool(cfg: DictConfig) -> Pooled:
    card = read_data_card(cfg)
    rows = {name: _rows(cfg, name) for name in SPLITS}
    pool = rows["train"] + rows["val"]
    frame = pd.DataFrame(pool, columns=["id", "text", "label"])
    test = pd.DataFrame(rows["test"], columns=["id", "text", "label"])

    def write_fold(out: Path, trained_on: np.ndarray, held_out: np.ndarray) -> None:
        fold = {"train": frame.iloc[trained_on], "val": frame.iloc[held_out], "test": test}
        write_splits(out, fold, {**card, "counts": split_counts(fold, card["class_names"]),
                                 "split": {**card["split"], "method": "a fold of train + val"}})

    return Pooled(frame["label"].to_numpy(dtype=np.int64), _groups(cfg, pool), write_fold)


def _candidates(cfg: DictConfig) -> list[Candidate]:
    known = [MAIN, *cfg.baselines]
    unknown = [name for name in cfg.cv.models if name not in known]
    if unknown:
        raise ConfigError(f"cv.models {unknown} are not models of this pipeline: use "
                          f"'{MAIN}' (the pipeline's own) or a key of baselines "
                          f"({', '.join(cfg.baselines)}).")
    out = []
    for name in cfg.cv.models:
        if name == MAIN:
            out.append(Candidate(name, "the pipeline's model", cfg))
        else:
            entry = cfg.baselines[name]
            # Its outputs are redirected into each fold's folder (fold_config).
            out.append(Candidate(name, entry.get("label") or name,
                                 baseline_config(cfg, name, Path(cfg.paths.baselines))))
    return out


def _rows(cfg: DictConfig, split: str) -> list[dict]:
    path = Path(cfg.paths.prepared) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _groups(cfg: DictConfig, pool: list[dict]) -> np.ndarray | None:
    """Each pooled text's group (e.g. its movie), from the same source and cleaning as prepare
    (the prepared files keep id, text and label; the id is the row of the cleaned source)."""
    reviews = instantiate(cfg.data.source, "data.source")
    frame, _ = clean(reviews, list(cfg.data.class_names))
    if frame["group"].isna().all():
        return None
    ids = [r["id"] for r in pool]
    if max(ids) >= len(frame) or any(frame["text"].iloc[r["id"]] != r["text"] for r in pool):
        raise DataError(f"{cfg.paths.prepared} was not prepared from the current data.source: "
                        "rerun the prepare stage (`dvc repro`) before cross-validating.")
    return frame["group"].iloc[ids].to_numpy(dtype=object)


def summarize(cfg: DictConfig, record: dict) -> str:
    from forgeml.reporting.crossval import one_line

    return one_line(record)
