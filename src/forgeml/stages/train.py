"""train: fit the configured model with Lightning; log the run, its lineage and the model."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from forgeml import tracking
from forgeml.config import flatten, instantiate
from forgeml.data.tensors import PreparedDataModule
from forgeml.errors import DataError
from forgeml.io import atomic_write_json, atomic_write_text, replace_dir
from forgeml.models.classifier import ImageClassifier, build_network

log = logging.getLogger(__name__)
RUN_FILE = "run.json"
BEST_CHECKPOINT = "best.ckpt"


def read_data_card(cfg: DictConfig) -> dict:
    path = Path(cfg.paths.prepared) / "data_card.json"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    return json.loads(path.read_text())


def make_network(cfg: DictConfig, card: dict) -> nn.Module:
    model = instantiate(cfg.model, "model")
    return build_network(model, **card["normalization"])


def load_network(cfg: DictConfig) -> nn.Module:
    """The best checkpoint of the last train stage, as an eval-mode nn.Module."""
    path = Path(cfg.paths.models) / BEST_CHECKPOINT
    if not path.is_file():
        raise DataError(f"{path} not found: run the train stage first (`dvc repro`).")
    network = make_network(cfg, read_data_card(cfg))
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    network.load_state_dict({k.removeprefix("network."): v for k, v in state.items()})
    return network.eval()


def read_run(cfg: DictConfig) -> dict:
    path = Path(cfg.paths.models) / RUN_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: run the train stage first (`dvc repro`).")
    return json.loads(path.read_text())


def train(cfg: DictConfig) -> dict | None:
    """Train; on global rank 0 return the run record (other DDP ranks return None)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from pytorch_lightning.loggers import MLFlowLogger
    from pytorch_lightning.utilities import rank_zero_only

    card = read_data_card(cfg)
    uri = tracking.tracking_uri(cfg)
    is_launcher = rank_zero_only.rank == 0  # DDP children start with their rank in the env
    if is_launcher:
        tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    network = make_network(cfg, card)
    task = ImageClassifier(
        network,
        optimizer=instantiate(cfg.optimizer, "optimizer"),
        augment=OmegaConf.to_container(cfg.data.augment),
        check_finite_every_n_steps=cfg.train.check_finite_every_n_steps,
    )
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = PreparedDataModule(cfg.paths.prepared, cfg.train.batch_size,
                                    cfg.train.eval_batch_size, pin_memory=on_gpu)

    # One staging folder shared by every DDP rank; it replaces paths.models only on success.
    models_dir = Path(cfg.paths.models)
    staging = models_dir.with_name(f".{models_dir.name}.partial")
    if is_launcher:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)

    checkpoint = ModelCheckpoint(dirpath=staging, filename="best", monitor="val/loss",
                                 mode="min", save_top_k=1, save_last=True)
    callbacks: list = [checkpoint]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar(refresh_rate=cfg.train.progress_refresh_steps))
    stopping = cfg.train.early_stopping
    if stopping.enabled:
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
        trainer.fit(task, datamodule=datamodule)
    except BaseException:
        if trainer.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if not trainer.is_global_zero:
        return None

    try:
        record = _finish_run(cfg, card, task, trainer, checkpoint, logger, uri, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, models_dir)
    return record


def _finish_run(cfg, card, task, trainer, checkpoint, logger, uri, staging: Path) -> dict:
    run_id = logger.run_id
    tracking.log_params(uri, run_id, flatten(cfg))
    config_yaml = staging / "config.yaml"
    atomic_write_text(config_yaml, OmegaConf.to_yaml(cfg, resolve=True))
    card_path = staging / "data_card.json"
    atomic_write_json(card_path, card)
    tracking.log_artifacts(uri, run_id, [config_yaml, card_path], "config")

    best = Path(checkpoint.best_model_path)
    if best.name != BEST_CHECKPOINT:
        best.rename(staging / BEST_CHECKPOINT)
    state = torch.load(staging / BEST_CHECKPOINT, map_location="cpu", weights_only=False)
    task.load_state_dict(state["state_dict"])

    n_params = sum(p.numel() for p in task.network.parameters())
    samples_per_s = task.train_samples / task.train_seconds if task.train_seconds else 0.0
    best_val = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None \
        else math.nan
    val_acc = max((h["val_acc"] for h in task.history), default=math.nan)
    summary = {
        "best_val_loss": best_val,
        "best_val_acc": val_acc,
        "epochs_trained": len(task.history),
        "train_seconds": task.train_seconds,
        "train_samples_per_second": samples_per_s,
        "parameters": n_params,
    }
    tracking.log_metrics(uri, run_id, {f"train_summary/{k}": v for k, v in summary.items()})
    if cfg.logger.log_model:
        example = datamodule_example(cfg)
        tracking.log_model(uri, run_id, task.network, example)

    plots_dir = Path(cfg.paths.plots)
    curve = "epoch,train_loss,train_acc,val_loss,val_acc\n" + "".join(
        f"{h['epoch']},{h['train_loss']:.6f},{h['train_acc']:.6f},{h['val_loss']:.6f},"
        f"{h['val_acc']:.6f}\n" for h in task.history)
    atomic_write_text(plots_dir / "learning_curve.csv", curve)
    atomic_write_json(Path(cfg.paths.metrics) / "train.json", summary)
    record = {
        "run_id": run_id,
        "experiment_name": cfg.logger.experiment_name,
        "stopped_early": len(task.history) < cfg.trainer.max_epochs,
        "history": task.history,
        **summary,
    }
    atomic_write_json(staging / RUN_FILE, record)
    for leftover in staging.glob("*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
    return record


def datamodule_example(cfg: DictConfig, n: int = 2):
    from forgeml.data.tensors import load_split

    images, _ = load_split(cfg.paths.prepared, "val")
    return images[:n].numpy()
