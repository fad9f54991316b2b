"""pretrain (pretraining): the masked autoencoder on the training split's images, their labels
unused; validation reconstruction loss picks the checkpoint. Outputs the encoder's weights (what
fine-tuning starts from: a DVC output, so other fine-tuning settings never retrain it), the
per-epoch reconstruction grids and the run record; logs a grid per epoch to the MLflow run."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from forgeml.artifacts import read_data_card
from forgeml.data.base import image_columns
from forgeml.data.tensors import load_split
from forgeml.models.mae import MaskedAutoencoder, parameters_of
from forgeml.models.registry import instantiate_network
from forgeml.tasks.pretraining.pictures import reconstruction_picture
from forgeml.training.callbacks import LogPicture
from forgeml.training.datamodules import PreparedDataModule
from forgeml.training.fitting import FittedRun, fit
from forgeml.training.masked_pretraining import MaskedPretraining

ENCODER_FILE = "encoder.pt"
GRIDS_FILE = "reconstructions.pt"


def pretrain_config(cfg: DictConfig) -> DictConfig:
    """The pipeline's config as the pre-training run sees it: its epochs and batch size; its
    train.json under <metrics>/pretrain."""
    p = cfg.pretrain
    return OmegaConf.merge(cfg, {
        "trainer": {"max_epochs": int(p.epochs)},
        "train": {"batch_size": int(p.batch_size), "early_stopping": {"enabled": False}},
        "paths": {"metrics": f"{cfg.paths.metrics}/pretrain", "plots": f"{cfg.paths.plots}/"
                  "pretrain"},
    })


def pretrain(cfg: DictConfig) -> dict | None:
    import pytorch_lightning as pl

    card = read_data_card(cfg)
    run_cfg = pretrain_config(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    p = cfg.pretrain
    encoder = instantiate_network(cfg.model).encoder
    mae = MaskedAutoencoder(encoder, p.decoder.n_layer, p.decoder.n_embd, p.decoder.n_head,
                            p.mask_ratio, p.norm_pix_loss)
    val_images, _ = load_split(cfg.paths.prepared, "val")
    task = MaskedPretraining(mae, p.lr, p.weight_decay, p.warmup_fraction,
                             val_images[:p.grid_images], **card["normalization"])
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = PreparedDataModule(cfg.paths.prepared, int(p.batch_size),
                                    cfg.train.eval_batch_size, pin_memory=on_gpu)

    # The epoch's original / masked / reconstructed grid as an MLflow image.
    log_grid = LogPicture(
        lambda module: reconstruction_picture(module.grids[-1], card) if module.grids else None,
        lambda module: f"reconstructions/epoch_{len(module.grids):03d}.png")

    def finish(fitted: FittedRun) -> dict:
        history = task.history
        best = min(history, key=lambda h: h["val_loss"])
        seconds = fitted.train_seconds
        torch.save(mae.encoder.state_dict(), fitted.staging / ENCODER_FILE)
        torch.save({"grids": torch.stack(task.grids)}, fitted.staging / GRIDS_FILE)
        curve = "epoch,train_loss,val_loss\n" + "".join(
            f"{h['epoch']},{h['train_loss']:.6f},{h['val_loss']:.6f}\n" for h in history)
        fitted.outputs.write_text(Path(run_cfg.paths.plots) / "learning_curve.csv", curve)
        return {
            "best_val_loss": best["val_loss"], "best_epoch": best["epoch"],
            "epochs_trained": len(history), "stopped_early": False,
            "train_seconds": seconds,
            "train_samples_per_second": task.train_samples / seconds if seconds else 0.0,
            "parameters": parameters_of(mae.encoder),
            "decoder_parameters": parameters_of(mae) - parameters_of(mae.encoder),
            "mask_ratio": float(p.mask_ratio),
            "patch_size": int(mae.encoder.config.patch_size),
        }

    return fit(run_cfg, task, datamodule, card, finish, image_columns(card),
               extra_callbacks=[log_grid],
               monitor="val/loss", mode="min",
               divergence_advice="or raise pretrain.warmup_fraction")


def summarize(cfg: DictConfig, record: dict) -> str:
    return (f"pre-trained {record['epochs_trained']} epochs in {record['train_seconds']:.1f} s "
            f"({record['train_samples_per_second']:,.0f} images/s); best val reconstruction "
            f"loss {record['best_val_loss']:.4f} at epoch {record['best_epoch']}; MLflow run "
            f"{record['run_id']}")
