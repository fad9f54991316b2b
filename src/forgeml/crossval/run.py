"""The cv stage: for each model to cross-validate, train it once per fold (on the other folds,
scored on the held-out one) with the task's own train stage, as child runs of one MLflow parent
run per model; write `<paths.metrics>/cv.json` (mean, standard deviation, range, every fold).

Nothing is lost to a crash: a fold's result is kept in `.forgeml/cv/` as soon as it is known,
so a rerun trains only the folds not yet done (a fold killed mid-training resumes from its
checkpoint, in the same MLflow run, through the train stage's own resume)."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from forgeml import tracking
from forgeml.config import find_config_dir
from forgeml.crossval.folds import make_folds, training_indices
from forgeml.io import atomic_dir, atomic_write_json

CV_FILE = "cv.json"


@dataclass(frozen=True)
class Pooled:
    """Train + val of the prepared data as one pool the folds are cut from."""

    labels: np.ndarray
    groups: np.ndarray | None  # None: no groups (plain stratified folds)
    # (folder, training indices, held-out indices): write that fold's prepared data there, in
    # the task's own format (held-out examples as its validation split, test unchanged).
    write_fold: Callable[[Path, np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class Candidate:
    """One model to cross-validate: its key in cv.models, its display name, its config."""

    name: str
    label: str
    cfg: DictConfig


def cv_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.metrics) / CV_FILE


def cross_validate(cfg: DictConfig, pool: Callable[[], Pooled], candidates: list[Candidate],
                   train: Callable[..., dict | None]) -> dict:
    """`pool` reads the data: only when the stage is on."""
    spec = cfg.cv
    if not spec.folds:
        record = {"folds": 0}
        atomic_write_json(cv_path(cfg), record)
        return record
    pooled = pool()
    folds = make_folds(pooled.labels, int(spec.folds), int(spec.seed), pooled.groups)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    work = find_config_dir().parent / ".forgeml" / "cv" / cfg.pipeline.name
    models = {}
    for candidate in candidates:
        key = _key(candidate.cfg, folds)
        parent = _parent_run(uri, cfg, candidate, key, len(folds))
        results = [_fold(candidate, pooled, folds, i, work / key, parent, spec, train)
                   for i in range(len(folds))]
        models[candidate.name] = summary = _summary(candidate.label, results)
        tracking.log_metrics(uri, parent, {f"cv/acc_{k}": summary[f"acc_{k}"]
                                           for k in ("mean", "std", "min", "max")})
        tracking.describe_run(uri, parent, (
            f"{len(folds)}-fold cross-validation of {candidate.label} over train + val "
            f"({'stratified, grouped' if pooled.groups is not None else 'stratified'} folds): "
            f"accuracy {summary['acc_mean']:.4f} ± {summary['acc_std']:.4f} (standard "
            f"deviation over folds). Each child run is one fold."))
        tracking.end_run(uri, parent, "FINISHED")
    record = {"folds": len(folds), "seed": int(spec.seed), "grouped": pooled.groups is not None,
              "examples": len(pooled.labels),
              "held_out": {f"fold_{i + 1}": len(held) for i, held in enumerate(folds)},
              "models": models}
    atomic_write_json(cv_path(cfg), record)
    return record


def _key(cfg: DictConfig, folds: list[np.ndarray]) -> str:
    """Names a model's folds by its config and the fold assignment: a rerun with the same
    ones finds the results already done."""
    digest = hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode())
    for held in folds:
        digest.update(np.asarray(held, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def _parent_run(uri: str, cfg: DictConfig, candidate: Candidate, key: str, k: int) -> str:
    """The model's cross-validation run: reopened by a rerun (same folds, same config)."""
    experiment = f"{cfg.pipeline.name}-cv"
    mlflow_client = tracking.client(uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        runs = mlflow_client.search_runs([found.experiment_id], max_results=1,
                                         filter_string=f"tags.`forgeml.cv_key` = '{key}'")
        if runs and tracking.reopen_run(uri, runs[0].info.run_id, "cv rerun"):
            return runs[0].info.run_id
    return tracking.start_run(
        uri, experiment, {**tracking.owner_tags(), "forgeml.cv_key": key,
                          "forgeml.cv_model": candidate.name, "forgeml.pipeline":
                          cfg.pipeline.name},
        f"cv-{candidate.name}-{k}fold",
        f"k-fold cross-validation runs of the ForgeML pipeline '{cfg.pipeline.name}' (`forgeml "
        "cv`): one parent run per model, one child run per fold.")


def _fold(candidate: Candidate, pooled: Pooled, folds: list[np.ndarray], i: int, root: Path,
          parent: str, spec: DictConfig, train: Callable[..., dict | None]) -> dict:
    folder = root / f"fold-{i + 1}"
    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    held = folds[i]
    trained_on = training_indices(len(pooled.labels), held)
    prepared = folder / "prepared"
    if not (prepared / "data_card.json").is_file():
        with atomic_dir(prepared) as out:
            pooled.write_fold(out, trained_on, held)
    record = train(fold_config(candidate.cfg, folder, spec), child_of=tracking.ChildOf(
        parent, {"forgeml.fold": str(i + 1), "forgeml.cv_model": candidate.name}))
    result = {"fold": i + 1, "acc": fold_score(record), "held_out": len(held),
              "trained_on": len(trained_on), "run_id": record["run_id"],
              "epochs": record.get("epochs_trained"), "train_seconds": record["train_seconds"]}
    atomic_write_json(done, result)
    return result


def fold_config(cfg: DictConfig, folder: Path, spec: DictConfig) -> DictConfig:
    """The model's config trained on one fold: its data and outputs in the fold's folder, a
    fixed number of epochs (the held-out fold is the score, so it must not pick the epoch),
    logged to `<pipeline>-cv` without a model."""
    epochs = spec.get("max_epochs") or cfg.trainer.max_epochs
    return OmegaConf.merge(cfg, {
        "paths": {"prepared": str(folder / "prepared"), "models": str(folder / "models"),
                  "metrics": str(folder / "metrics"), "plots": str(folder / "plots"),
                  "eval": str(folder / "eval"), "reports": str(folder / "reports")},
        "logger": {"experiment_name": f"{cfg.pipeline.name}-cv", "log_model": False},
        "train": {"early_stopping": {"enabled": False}},
        "trainer": {"max_epochs": int(epochs), "enable_progress_bar": False},
    })


def fold_score(record: dict) -> float:
    """Accuracy on the held-out fold after the last epoch (a one-shot estimator: its only)."""
    last = [row["val_acc"] for row in record.get("history", []) if "val_acc" in row]
    return float(last[-1]) if last else float(record["best_val_acc"])


def _summary(label: str, results: list[dict]) -> dict:
    scores = [r["acc"] for r in results]
    return {"label": label, "acc_mean": statistics.fmean(scores),
            "acc_std": statistics.stdev(scores) if len(scores) > 1 else math.nan,
            "acc_min": min(scores), "acc_max": max(scores),
            "fold_acc": {f"fold_{r['fold']}": r["acc"] for r in results},
            "train_seconds": sum(r["train_seconds"] for r in results)}
