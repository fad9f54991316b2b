"""train (generative): fit the conditional DCGAN against the frozen feature space; keep the
best generator by validation FID, the generator after epoch 1 (a reference point of evaluate)
and the fixed-noise grid of every epoch; log the run, the grids and the generator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig

from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.data.base import image_columns
from forgeml.saved_network import log_network
from forgeml.tasks.generative.adversarial import AdversarialTraining, plain_generator
from forgeml.tasks.generative.images import grid_array
from forgeml.tasks.generative.network import EPOCH1_FILE, GRIDS_FILE, load_features, make_networks
from forgeml.tracking import ChildOf
from forgeml.training.callbacks import LogPicture
from forgeml.training.datamodules import PreparedDataModule
from forgeml.training.fitting import FittedRun, fit


def train(cfg: DictConfig, *, child_of: ChildOf | None = None,
          callbacks: Sequence = ()) -> dict | None:
    """Train; on global rank 0 return the run record (other DDP ranks return None).
    `child_of` and `callbacks`: when the training is part of a larger run (a sweep's trial
    with its pruning callback, a cross-validation fold)."""
    import pytorch_lightning as pl

    card = read_data_card(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    generator, discriminator = make_networks(cfg)
    task = AdversarialTraining(
        generator, discriminator, load_features(cfg),
        optimizer=instantiate(cfg.optimizer, "optimizer"), loss=cfg.gan.loss,
        label_smoothing=cfg.gan.label_smoothing, ema_decay=cfg.gan.ema_decay,
        fid_samples=cfg.train.fid_samples, grid_per_class=cfg.train.grid_per_class,
        seed=cfg.seed)
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = PreparedDataModule(cfg.paths.prepared, cfg.train.batch_size,
                                    cfg.train.eval_batch_size, pin_memory=on_gpu)

    # The epoch's fixed-noise grid as an MLflow image.
    log_grid = LogPicture(
        lambda module: grid_array(module.grids[-1].numpy(), generator.num_classes or 1)
        if module.grids else None,
        lambda module: f"samples/epoch_{module.grid_epochs[-1]:03d}.png")

    def finish(fitted: FittedRun) -> dict:
        history = task.history
        scored = [h for h in history if math.isfinite(h["val_fid"])]
        best = min(scored, key=lambda h: h["val_fid"])
        seconds = fitted.train_seconds
        summary = {
            "best_val_fid": best["val_fid"], "best_val_kid": best["val_kid"],
            "best_epoch": best["epoch"], "first_val_fid": scored[0]["val_fid"],
            "epochs_trained": len(history), "stopped_early": False,
            "train_seconds": seconds,
            "train_samples_per_second": task.train_samples / seconds if seconds else 0.0,
            "parameters": sum(p.numel() for p in task.generator.parameters()),
            "discriminator_parameters": sum(p.numel() for p in task.discriminator.parameters()),
        }
        torch.save(task.epoch1_generator, fitted.staging / EPOCH1_FILE)
        torch.save({"epochs": torch.tensor(task.grid_epochs), "grids": torch.stack(task.grids)},
                   fitted.staging / GRIDS_FILE)
        if cfg.logger.log_model:
            final = plain_generator(task)
            example = torch.randn(2, final.config.latent_dim + (1 if final.num_classes else 0))
            if final.num_classes:
                example[:, -1] = torch.tensor([0.0, 1.0])
            log_network(fitted.uri, fitted.run_id, final, example.numpy())
        curve = "epoch,d_loss,g_loss,d_real,val_fid,val_kid\n" + "".join(
            f"{h['epoch']},{h['d_loss']:.6f},{h['g_loss']:.6f},{h['d_real']:.6f},"
            f"{h['val_fid']:.6f},{h['val_kid']:.6f}\n" for h in history)
        fitted.outputs.write_text(Path(cfg.paths.plots) / "learning_curve.csv", curve)
        return summary

    return fit(cfg, task, datamodule, card, finish, image_columns(card),
               extra_callbacks=[log_grid, *callbacks], monitor="val/fid", mode="min",
               child_of=child_of,
               divergence_advice="or lower gan.label_smoothing / check the data")


def summarize(cfg: DictConfig, record: dict) -> str:
    return (f"trained {record['epochs_trained']} epochs in {record['train_seconds']:.1f} s; "
            f"best val FID {record['best_val_fid']:.2f} at epoch {record['best_epoch']} "
            f"(first validation: {record['first_val_fid']:.2f}); MLflow run {record['run_id']}")



