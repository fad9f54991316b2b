"""Fit a LightningModule as a pipeline's train stage: one MLflow run with lineage, the best
checkpoint, and an output folder that appears only when everything succeeded (DDP-safe)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from forgeml import tracking
from forgeml.artifacts import BEST_CHECKPOINT, DATA_CARD, RUN_FILE
from forgeml.config import flatten, instantiate
from forgeml.io import atomic_write_json, atomic_write_text, replace_dir


@dataclass
class FittedRun:
    """What a task's `finish` callback gets once training is over (global rank 0 only)."""

    run_id: str
    uri: str
    staging: Path  # becomes paths.models; put extra artifacts here
    trainer: Any  # None for scikit-learn estimators
    best_score: float  # of the monitored metric (val/loss unless the task says otherwise)
    train_seconds: float = math.nan  # estimators only (Lightning modules time themselves)


def fit(cfg: DictConfig, module: Any, datamodule: Any, card: dict,
        finish: Callable[[FittedRun], dict], extra_callbacks: list | None = None,
        monitor: str = "val/loss", mode: str = "min",
        weights_only_checkpoints: bool = False) -> dict | None:
    """Train `module`; the checkpoint best by `monitor` is loaded back into it before `finish`
    adds the task's summary. Returns the run record (None on other DDP ranks)."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from pytorch_lightning.loggers import MLFlowLogger
    from pytorch_lightning.utilities import rank_zero_only

    uri = tracking.tracking_uri(cfg)
    is_launcher = rank_zero_only.rank == 0  # DDP children start with their rank in the env
    if is_launcher:
        tracking.check_reachable(uri, cfg.logger.connect_timeout_s)

    # One staging folder shared by every DDP rank; it replaces paths.models only on success.
    models_dir = Path(cfg.paths.models)
    staging = models_dir.with_name(f".{models_dir.name}.partial")
    if is_launcher:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)

    checkpoint = ModelCheckpoint(dirpath=staging, filename="best", monitor=monitor, mode=mode,
                                 save_top_k=1, save_last=True,
                                 save_weights_only=weights_only_checkpoints)
    callbacks: list = [checkpoint, *(extra_callbacks or [])]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar(refresh_rate=cfg.train.progress_refresh_steps))
    stopping = cfg.train.get("early_stopping")
    if stopping and stopping.enabled:
        callbacks.append(EarlyStopping(monitor=stopping.monitor, mode=stopping.mode,
                                       patience=stopping.patience))
    tags = tracking.lineage_tags(cfg, card)
    logger = MLFlowLogger(
        experiment_name=cfg.logger.experiment_name, tracking_uri=uri, tags=tags,
        run_name=f"{tags['forgeml.model'].lower()}-{cfg.data.name}-{tags['forgeml.config_hash'][:6]}",
    )
    trainer = instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=logger,
                          default_root_dir=str(staging), enable_model_summary=False)
    try:
        trainer.fit(module, datamodule=datamodule)
    except BaseException:
        if trainer.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if not trainer.is_global_zero:
        return None

    try:
        run_id = logger.run_id
        _log_inputs(cfg, uri, run_id, staging, card)
        best = Path(checkpoint.best_model_path)
        if best.name != BEST_CHECKPOINT:
            best.rename(staging / BEST_CHECKPOINT)
        state = torch.load(staging / BEST_CHECKPOINT, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        best_score = float(checkpoint.best_model_score) \
            if checkpoint.best_model_score is not None else math.nan

        summary = finish(FittedRun(run_id, uri, staging, trainer, best_score))
        record = _record(cfg, uri, run_id, staging, summary, getattr(module, "history", []))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, models_dir)
    return record


def fit_estimator(cfg: DictConfig, estimator: Any, inputs: Any, labels: Any, card: dict,
                  finish: Callable[[FittedRun], dict]) -> dict:
    """`fit` for a scikit-learn estimator: the same MLflow run, lineage, staged output and run
    record, without Lightning (`FittedRun.trainer` is None, `best_score` NaN)."""
    import time

    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    models_dir = Path(cfg.paths.models)
    staging = models_dir.with_name(f".{models_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tags = tracking.lineage_tags(cfg, card)
    run_id = tracking.start_run(
        uri, cfg.logger.experiment_name, tags,
        f"{tags['forgeml.model'].lower()}-{cfg.data.name}-{tags['forgeml.config_hash'][:6]}")
    try:
        _log_inputs(cfg, uri, run_id, staging, card)
        started = time.perf_counter()
        estimator.fit(inputs, labels)
        fitted = FittedRun(run_id, uri, staging, None, math.nan,
                           train_seconds=time.perf_counter() - started)
        record = _record(cfg, uri, run_id, staging, finish(fitted), [])
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        tracking.end_run(uri, run_id, "FAILED")
        raise
    tracking.end_run(uri, run_id, "FINISHED")
    replace_dir(staging, models_dir)
    return record


def _log_inputs(cfg: DictConfig, uri: str, run_id: str, staging: Path, card: dict) -> None:
    """Params (the flattened config), and the composed config + data card as artifacts."""
    tracking.log_params(uri, run_id, flatten(cfg))
    config_yaml = atomic_write_text(staging / "config.yaml", OmegaConf.to_yaml(cfg))
    card_path = atomic_write_json(staging / DATA_CARD, card)
    tracking.log_artifacts(uri, run_id, [config_yaml, card_path], "config")


def _record(cfg: DictConfig, uri: str, run_id: str, staging: Path, summary: dict,
            history: list) -> dict:
    """Log the summary, write metrics/<p>/train.json and the run record into the staging dir."""
    tracking.log_metrics(uri, run_id, {f"train_summary/{k}": v for k, v in summary.items()
                                       if isinstance(v, int | float)})
    atomic_write_json(Path(cfg.paths.metrics) / "train.json", summary)
    record = {"run_id": run_id, "experiment_name": cfg.logger.experiment_name,
              "history": history, **summary}
    atomic_write_json(staging / RUN_FILE, record)
    for leftover in staging.glob("*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
    return record
