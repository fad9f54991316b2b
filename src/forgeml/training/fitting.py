"""Fit a LightningModule as a pipeline's train stage: one MLflow run with lineage, opened (params
logged) before fitting and continued after a crash; the best checkpoint; and outputs that appear
together only when everything succeeded (DDP-safe)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback

from forgeml import tracking
from forgeml.artifacts import BEST_CHECKPOINT, DATA_CARD, RUN_FILE
from forgeml.config import flatten, instantiate
from forgeml.errors import ForgeMLError, TrainingError
from forgeml.io import StagedOutputs, staged_outputs
from forgeml.resume import ResumePoint, progress_state, restore_progress
from forgeml.training.callbacks import DivergenceCheck, RanksInStep, TrainingClock
from forgeml.training.ranks import agree_on_checkpoint


@dataclass
class FittedRun:
    """What a task's `finish` callback gets once training is over (global rank 0 only)."""

    run_id: str
    uri: str
    staging: Path  # becomes paths.models; put extra artifacts here
    outputs: StagedOutputs  # other outputs of the stage (plots, metrics) go through it
    trainer: Any  # None for scikit-learn estimators
    best_score: float  # of the monitored metric (val/loss unless the task says otherwise)
    train_seconds: float  # in training batches (TrainingClock), validation excluded


def fit(cfg: DictConfig, module: Any, datamodule: Any, card: dict,
        finish: Callable[[FittedRun], dict], columns: list[dict],
        extra_callbacks: list | None = None,
        monitor: str = "val/loss", mode: str = "min", clock: TrainingClock | None = None,
        divergence_advice: str = "or check the data", step_by_epoch: bool = True,
        privacy: Any = None, child_of: tracking.ChildOf | None = None) -> dict | None:
    """Train `module`, resuming the same MLflow run from the last checkpoint when the same
    config, data and code were interrupted; the checkpoint best by `monitor` is loaded back
    into it before `finish` adds the task's summary. Returns the run record (None on other
    DDP ranks). `clock`: the training clock, when the module reads it too (tokens/s per
    validation); `divergence_advice` ends the message of a diverged run; `step_by_epoch`:
    MLflow's step of a metric is its epoch (False: the optimizer step, for training that
    validates every N steps); `privacy`: the DP-SGD callback (training.privacy), which also
    sets the Trainer's strategy and sampler on several devices; `columns`: one prepared
    example's fields as MLflow schema entries, the schema of the run's dataset input;
    `extra_callbacks`: the task's own and its caller's (a sweep's pruning); `child_of`: the run
    this one nests under (a trial, a fold, a fine-tuning child)."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from pytorch_lightning.utilities import rank_zero_only
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    uri = tracking.tracking_uri(cfg)
    resume = ResumePoint.for_training(cfg, card, tracking.project_root())
    run_id = None

    def decide() -> str | None:  # rank 0 only: the one run, and where every rank resumes
        nonlocal run_id
        tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
        run_id, checkpoint = _open_run(cfg, uri, card, columns, resume, child_of)
        return str(checkpoint) if checkpoint else None

    # DDP ranks start with their rank in the environment; only rank 0 touches the store.
    ckpt_path = agree_on_checkpoint(rank_zero_only.rank, decide)

    checkpoint = ModelCheckpoint(dirpath=resume.checkpoints, filename="best", monitor=monitor,
                                 mode=mode, save_top_k=1, save_last=True)
    clock = clock or TrainingClock()
    callbacks: list = [clock, DivergenceCheck(cfg.train.check_finite_every_n_steps,
                                              divergence_advice),
                       checkpoint, _ResumableProgress(), RanksInStep(),
                       _CheckpointOnInterrupt(resume.checkpoints), *(extra_callbacks or []),
                       *([privacy] if privacy else [])]
    # A live bar where someone watches a terminal; in logs (CI, a scheduler, captured output)
    # it is noise and costs a few % of a small model's step time.
    show_bar = cfg.trainer.get("enable_progress_bar", True) and sys.stdout.isatty()
    if show_bar:
        callbacks.append(RichProgressBar(refresh_rate=cfg.train.progress_refresh_steps))
    stopping = cfg.train.get("early_stopping")
    if stopping and stopping.enabled:
        callbacks.append(EarlyStopping(monitor=stopping.monitor, mode=stopping.mode,
                                       patience=stopping.patience))
    # Other ranks never log (Lightning logs from rank 0), and must not open the store at all:
    # ranks of several nodes would race to create it.
    logger = _run_logger(cfg.logger.experiment_name, uri, run_id, step_by_epoch) \
        if rank_zero_only.rank == 0 else False
    trainer = instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=logger,
                          default_root_dir=str(resume.folder), enable_model_summary=False,
                          enable_progress_bar=show_bar,
                          **(privacy.trainer_options(cfg.trainer) if privacy else {}))
    try:
        # Resume checkpoints hold plain containers and tensors only (see _ResumableProgress).
        with tracking.system_metrics(uri, run_id, cfg.logger.system_metrics_interval_s):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        # Lightning ends a SIGTERMed fit with SystemExit(None), i.e. exit status 0: DVC would
        # take the stage as done and lock the previous outputs as this config's.
        raise ForgeMLError(
            f"Training was stopped (SIGTERM) at step {trainer.global_step}; its checkpoint is in "
            f"{resume.checkpoints}/. Rerun the same command (`dvc repro`) to resume the same "
            "MLflow run.") from None
    if not trainer.is_global_zero:
        return None
    if trainer.world_size > 1:  # RanksInStep found every rank's weights equal
        tracking.set_tags(uri, run_id, {"forgeml.ddp_world_size": str(trainer.world_size),
                                        "forgeml.ddp_weights_identical": "true"})

    best = Path(checkpoint.best_model_path or checkpoint.last_model_path)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    best_score = float(checkpoint.best_model_score) \
        if checkpoint.best_model_score is not None else math.nan
    try:
        with staged_outputs() as outputs:
            staging = outputs.dir(cfg.paths.models)
            torch.save({"state_dict": state}, staging / BEST_CHECKPOINT)  # weights only
            _write_inputs(cfg, staging, card)
            fitted = FittedRun(run_id, uri, staging, outputs, trainer, best_score,
                               clock.seconds)
            record = _record(cfg, uri, run_id, fitted, finish(fitted),
                             getattr(module, "history", []))
    except BaseException:
        tracking.end_run(uri, run_id, "FAILED")  # resumable: the checkpoints are kept
        raise
    tracking.end_run(uri, run_id, "FINISHED")
    resume.clear()
    return record


def fit_estimator(cfg: DictConfig, estimator: Any, inputs: Any, labels: Any, card: dict,
                  finish: Callable[[FittedRun], dict], columns: list[dict],
                  child_of: tracking.ChildOf | None = None) -> dict:
    """`fit` for a scikit-learn estimator: the same MLflow run, lineage, staged outputs and run
    record, without Lightning (`FittedRun.trainer` is None, `best_score` NaN). Seconds long,
    so it is rerun rather than resumed."""
    import time

    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    tracking.mark_dead_runs(uri, cfg.logger.experiment_name)
    run_id = _start_run(cfg, uri, card, columns, child_of)
    try:
        with staged_outputs() as outputs:
            staging = outputs.dir(cfg.paths.models)
            _write_inputs(cfg, staging, card)
            started = time.perf_counter()
            estimator.fit(inputs, labels)
            fitted = FittedRun(run_id, uri, staging, outputs, None, math.nan,
                               train_seconds=time.perf_counter() - started)
            record = _record(cfg, uri, run_id, fitted, finish(fitted), [])
    except BaseException:
        tracking.end_run(uri, run_id, "FAILED")
        raise
    tracking.end_run(uri, run_id, "FINISHED")
    return record


# --- the run ------------------------------------------------------------------------------------
def _open_run(cfg: DictConfig, uri: str, card: dict, columns: list[dict], resume: ResumePoint,
              child_of: tracking.ChildOf | None) -> tuple[str, Path | None]:
    """The interrupted run of this exact training, reopened with its last checkpoint; else a
    new run with its params and config logged before any training."""
    run_id, ckpt = resume.run_id(), resume.checkpoint()
    if run_id and ckpt and tracking.reopen_run(uri, run_id, resume.describe(ckpt)):
        tracking.mark_dead_runs(uri, cfg.logger.experiment_name)
        print(f"resuming MLflow run {run_id} from {resume.describe(ckpt)} ({ckpt})", flush=True)
        return run_id, ckpt
    tracking.mark_dead_runs(uri, cfg.logger.experiment_name)
    run_id = _start_run(cfg, uri, card, columns, child_of)
    resume.start(run_id)
    return run_id, None


def _start_run(cfg: DictConfig, uri: str, card: dict, columns: list[dict],
               child_of: tracking.ChildOf | None) -> str:
    tags = {**tracking.lineage_tags(cfg, card), **tracking.owner_tags()}
    name = f"{tags['forgeml.model'].lower()}-{cfg.data.name}-{tags['forgeml.config_hash'][:6]}"
    run_id = tracking.start_run(uri, cfg.logger.experiment_name, tags, name,
                                tracking.pipeline_description(cfg), child_of)
    tracking.log_datasets(uri, run_id, cfg.data.name, card,
                          json.dumps({"mlflow_colspec": columns}) if columns else None)
    tracking.log_params(uri, run_id, flatten(cfg))
    tracking.log_dict(uri, run_id, OmegaConf.to_container(cfg, resolve=True),
                      "config/config.yaml")
    tracking.log_dict(uri, run_id, card, f"config/{DATA_CARD}")
    return run_id


def _run_logger(experiment_name: str, uri: str, run_id: str | None, step_by_epoch: bool):
    """Lightning's MLflow logger attached to our run; the run is ended by `fit`, after the
    outputs are committed, not by Lightning when fitting returns."""
    from pytorch_lightning.loggers import MLFlowLogger

    class RunLogger(MLFlowLogger):
        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            # Lightning adds the (0-based) epoch to every logged dict: step = epochs done, as
            # in the report's curves, so runs of different batch or data sizes line up by
            # epoch in MLflow's UI.
            if step_by_epoch and "epoch" in metrics:
                metrics = dict(metrics)
                step = int(metrics.pop("epoch")) + 1
            super().log_metrics(metrics, step)

        def finalize(self, status: str = "success") -> None:
            if status != "success":
                super().finalize(status)

    return RunLogger(experiment_name=experiment_name, tracking_uri=uri, run_id=run_id)


def _write_inputs(cfg: DictConfig, staging: Path, card: dict) -> None:
    (staging / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    (staging / DATA_CARD).write_text(json.dumps(card, indent=2, sort_keys=True))


def _record(cfg: DictConfig, uri: str, run_id: str, fitted: FittedRun, summary: dict,
            history: list) -> dict:
    """Log the summary; stage metrics/<p>/train.json and the run record."""
    tracking.log_metrics(uri, run_id, {f"train_summary/{k}": v for k, v in summary.items()
                                       if isinstance(v, int | float)})
    fitted.outputs.write_json(Path(cfg.paths.metrics) / "train.json", summary)
    record = {"run_id": run_id, "experiment_name": cfg.logger.experiment_name,
              "history": history, **summary}
    (fitted.staging / RUN_FILE).write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


# --- callbacks ----------------------------------------------------------------------------------
class _ResumableProgress(Callback):
    """Carries the task's history, timers, counters and the RNG states in every checkpoint, so
    a resumed run continues them instead of starting them again."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["forgeml"] = progress_state(pl_module)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        restore_progress(pl_module, checkpoint.get("forgeml", {}))


class _CheckpointOnInterrupt(Callback):
    """A checkpoint when training is stopped (SIGTERM from a pre-empting scheduler or a dying
    parent, Ctrl-C), so the next run loses nothing; not when it diverged (resuming NaNs helps
    nobody)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "on_exception.ckpt"

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, TrainingError) or not isinstance(
                exception, KeyboardInterrupt | SystemExit):
            return
        trainer.save_checkpoint(self.path)
