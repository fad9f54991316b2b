"""Score any logged model of a pipeline on the CURRENT frozen evaluation set, one value per test
example (the task's own scorer), so that challenger and champion are compared on exactly the
same examples even when the champion was trained on older data; and a data-drift statistic
between their training data."""

from __future__ import annotations

import json
import math

import numpy as np
from omegaconf import DictConfig

from forgeml.task_interface import Retraining
from forgeml.tasks import task_of


def hooks(cfg: DictConfig) -> Retraining:
    return task_of(cfg).retraining_hooks(cfg.pipeline.name)


def metric_name(cfg: DictConfig) -> str:
    return hooks(cfg).metric(cfg)


def per_example(cfg: DictConfig, uri: str, run_id: str) -> np.ndarray:
    return hooks(cfg).per_example(cfg, uri, run_id)


def data_card(uri: str, run_id: str) -> dict:
    from forgeml.tracking import download

    return json.loads(download(uri, run_id, "config/data_card.json").read_text())


def drift(cfg: DictConfig, reference: dict, current: dict) -> dict:
    """Population stability index between the reference (champion's) and current training
    data, over the distribution the task names (class mix, users' activity buckets)."""
    counts = hooks(cfg).drift_counts
    what, ref = counts(reference)
    _, cur = counts(current)
    if not ref or not cur or len(ref) != len(cur):
        return {"statistic": f"PSI of the {what}", "psi": None,
                "note": "the reference data card has no comparable distribution"}
    return {"statistic": f"PSI of the {what}", "psi": psi(np.asarray(ref), np.asarray(cur)),
            "reference": list(ref), "current": list(cur),
            "reference_rows": reference["counts"]["train"], "current_rows":
            current["counts"]["train"]}


def psi(reference: np.ndarray, current: np.ndarray, eps: float = 1e-4) -> float:
    """sum((q - p) * ln(q / p)) over bins; < 0.1 stable, 0.1-0.25 moderate, > 0.25 large."""
    p = np.clip(reference / max(reference.sum(), 1), eps, None)
    q = np.clip(current / max(current.sum(), 1), eps, None)
    value = float(((q - p) * np.log(q / p)).sum())
    return value if math.isfinite(value) else float("inf")
