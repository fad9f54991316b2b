"""What the reports and the CLI say about a cv stage's result (`<paths.metrics>/cv.json`)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from forgeml.reporting.render import table


def one_line(record: dict) -> str:
    if not record.get("folds"):
        return "cross-validation off (cv.folds=0)"
    return f"{record['folds']}-fold cross-validation: " + "; ".join(
        f"{m['label']} acc {m['acc_mean']:.4f} ± {m['acc_std']:.4f}"
        for m in record["models"].values())


def section(cfg: DictConfig) -> dict | None:
    """The report's cross-validation section, or None when the cv stage is off (or absent)."""
    path = Path(cfg.paths.metrics) / "cv.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if not record.get("folds"):
        return None
    k = record["folds"]
    folds = [f"fold_{i + 1}" for i in range(k)]
    models = record["models"].values()
    how = ("stratified by label and grouped (a group's examples, e.g. one movie's reviews, are "
           "all in one fold)" if record["grouped"] else "stratified by label")
    sentences = [
        f"The model was also trained {k} times on {k}-fold splits of the {record['examples']:,} "
        f"training and validation examples ({how}; the test split is not used), each time "
        "scored on the fold it did not see. The spread over folds shows how much the accuracy "
        "depends on which examples a model happens to be trained and scored on."]
    for m in models:
        sentences.append(
            f"{m['label']}: accuracy {m['acc_mean']:.1%} on average, standard deviation "
            f"{m['acc_std'] * 100:.1f} points (from {m['acc_min']:.1%} to {m['acc_max']:.1%}).")
    return {
        "sentences": sentences,
        "summary": table(["Model", "Mean accuracy", "Std. deviation", "Min", "Max",
                          "Training time"],
                         [[m["label"], f"{m['acc_mean']:.2%}", f"{m['acc_std'] * 100:.2f} pts",
                           f"{m['acc_min']:.2%}", f"{m['acc_max']:.2%}",
                           f"{m['train_seconds']:.0f} s"] for m in models]),
        "folds": table(["Model", *[f"Fold {i + 1}" for i in range(k)]],
                       [[m["label"], *[f"{m['fold_acc'][f]:.2%}" for f in folds]]
                        for m in models]
                       + [["Held-out examples", *[f"{record['held_out'][f]:,}" for f in folds]]]),
        "experiment": f"{cfg.pipeline.name}-cv",
    }
