"""Which examples each fold holds out: stratified by label (every fold has each class in its
overall share) and, where groups exist (reviews of the same movie), grouped: a group's examples
are all in one fold, so no fold is scored on a group it trained on."""

from __future__ import annotations

import numpy as np

from forgeml.errors import ConfigError


def make_folds(labels: np.ndarray, k: int, seed: int,
               groups: np.ndarray | None = None) -> list[np.ndarray]:
    """The held-out indices of each of the `k` folds (disjoint, together every example)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.asarray(labels)
    if k < 2:
        raise ConfigError(f"cv.folds={k}: k-fold cross-validation needs at least 2 folds "
                          "(0 turns the cv stage off).")
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    if smallest < k:
        raise ConfigError(f"cv.folds={k} is more than the {smallest} examples of the rarest "
                          f"class in train + val: every fold must hold each class; use at most "
                          f"{smallest} folds.")
    placeholder = np.zeros(len(labels))
    if groups is None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return [held for _, held in splitter.split(placeholder, labels)]
    groups = complete_groups(groups)
    distinct = len(np.unique(groups))
    if distinct < k:
        raise ConfigError(f"cv.folds={k} is more than the {distinct} groups in train + val: "
                          f"a group is never split across folds; use at most {distinct} folds.")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(placeholder, labels, groups)]


def complete_groups(groups: np.ndarray) -> np.ndarray:
    """Group names as strings; an example without a group is a group of its own."""
    names = np.asarray(groups, dtype=object)
    missing = np.array([g is None or (isinstance(g, float) and np.isnan(g)) for g in names])
    out = np.array([f"group:{g}" for g in names], dtype=object)
    out[missing] = [f"example:{i}" for i in np.flatnonzero(missing)]
    return out


def training_indices(n: int, held_out: np.ndarray) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[held_out] = False
    return np.flatnonzero(keep)
