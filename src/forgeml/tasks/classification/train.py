"""train (classification): fit the configured image classifier; log the run and the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.data.base import image_columns
from forgeml.data.tensors import load_split
from forgeml.saved_network import log_network
from forgeml.tasks.classification.network import make_network
from forgeml.tracking import ChildOf
from forgeml.training.classifier import ImageClassifier
from forgeml.training.datamodules import PreparedDataModule
from forgeml.training.fitting import FittedRun, fit
from forgeml.training.privacy import differential_privacy


def train(cfg: DictConfig, *, child_of: ChildOf | None = None,
          callbacks: Sequence = ()) -> dict | None:
    """Train; on global rank 0 return the run record (other DDP ranks return None).
    `child_of` and `callbacks`: when the training is part of a larger run (a sweep's trial
    with its pruning callback, a cross-validation fold)."""
    import pytorch_lightning as pl

    card = read_data_card(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    task = ImageClassifier(
        make_network(cfg, card),
        optimizer=instantiate(cfg.optimizer, "optimizer"),
        augment=OmegaConf.to_container(cfg.data.augment),
    )
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = PreparedDataModule(cfg.paths.prepared, cfg.train.batch_size,
                                    cfg.train.eval_batch_size, pin_memory=on_gpu)
    privacy = differential_privacy(cfg, card["counts"]["train"])
    if privacy:
        datamodule = privacy.datamodule(datamodule)

    def finish(fitted: FittedRun) -> dict:
        seconds = fitted.train_seconds
        samples_per_s = task.train_samples / seconds if seconds else 0.0
        summary = {
            "best_val_loss": fitted.best_score,
            "best_val_acc": max((h["val_acc"] for h in task.history), default=math.nan),
            "epochs_trained": len(task.history),
            "stopped_early": len(task.history) < cfg.trainer.max_epochs,
            "train_seconds": seconds,
            "train_samples_per_second": samples_per_s,
            "parameters": sum(p.numel() for p in task.network.parameters()),
            **(privacy.summary() if privacy else {}),
        }
        if cfg.logger.log_model:
            images, _ = load_split(cfg.paths.prepared, "val")
            log_network(fitted.uri, fitted.run_id, task.network, images[:2].numpy(),
                                 output_transform="softmax")
        curve = "epoch,train_loss,train_acc,val_loss,val_acc\n" + "".join(
            f"{h['epoch']},{h['train_loss']:.6f},{h['train_acc']:.6f},{h['val_loss']:.6f},"
            f"{h['val_acc']:.6f}\n" for h in task.history)
        fitted.outputs.write_text(Path(cfg.paths.plots) / "learning_curve.csv", curve)
        return summary

    return fit(cfg, task, datamodule, card, finish, image_columns(card),
               extra_callbacks=list(callbacks), privacy=privacy, child_of=child_of)


def summarize(cfg: DictConfig, record: dict) -> str:
    private = (f"; DP-SGD ε={record['privacy_epsilon']:.2f} at δ={record['privacy_delta']:.1e}"
               if "privacy_epsilon" in record else "")
    return (f"trained {record['epochs_trained']} epochs in {record['train_seconds']:.1f} s "
            f"({record['train_samples_per_second']:,.0f} samples/s); best val acc "
            f"{record['best_val_acc']:.4f}{private}; MLflow run {record['run_id']}")
