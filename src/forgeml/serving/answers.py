"""Class probabilities as answers: one JSON object per input, or label / probability /
p_<class> columns for batch prediction (the same shape `forgeml predict` always wrote)."""

from __future__ import annotations

import numpy as np


def labelled(probs: np.ndarray, class_names: list[str]) -> list[dict]:
    best = probs.argmax(1)
    return [{"label": class_names[b], "probability": round(float(row[b]), 6),
             "probabilities": {name: round(float(p), 6)
                               for name, p in zip(class_names, row, strict=True)}}
            for b, row in zip(best, probs, strict=True)]


def labelled_columns(probs: np.ndarray, class_names: list[str]) -> dict[str, list | np.ndarray]:
    best = probs.argmax(1)
    columns: dict[str, list | np.ndarray] = {
        "label": [class_names[b] for b in best],
        "probability": probs[np.arange(len(best)), best]}
    for i, name in enumerate(class_names):
        columns[f"p_{name}"] = probs[:, i]
    return columns
