"""The masked-autoencoder LightningModule: reconstruction of hidden patches from the visible
ones, AdamW with a linear warm-up then cosine decay per step (MAE's schedule). Validation uses
the same masks every epoch (a fixed seed), so its loss is comparable across epochs, and keeps a
grid of fixed validation images (original / masked / reconstructed) for every epoch."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from forgeml.models.mae import MaskedAutoencoder, patchify, unpatchify
from forgeml.training.language_model import decay_groups

VALIDATION_MASK_SEED = 1234


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class MaskedPretraining(pl.LightningModule):
    def __init__(self, mae: MaskedAutoencoder, lr: float, weight_decay: float,
                 warmup_fraction: float, grid_images: torch.Tensor, mean: float = 0.0,
                 std: float = 1.0):
        """`mean`, `std`: the training split's pixel statistics; images (the batches and
        `grid_images`) are normalised with them, as the classifiers' NormalizedNetwork does,
        so the encoder sees what it sees when fine-tuned."""
        super().__init__()
        self.mae = mae
        self.mean, self.std = mean, std
        self.lr, self.weight_decay, self.warmup_fraction = lr, weight_decay, warmup_fraction
        self.register_buffer("grid_images", (grid_images - mean) / std, persistent=False)
        self.history: list[dict[str, float]] = []
        self.grids: list[torch.Tensor] = []  # per epoch: (3, n, C, H, W) in normalised units
        self.train_samples = 0
        self._sums: dict[str, torch.Tensor] = {}

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(decay_groups(self.mae, self.weight_decay), lr=self.lr,
                                      betas=(0.9, 0.95))
        total = int(self.trainer.estimated_stepping_batches)
        warmup = max(1, int(total * self.warmup_fraction))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        self._sums = {k: v.to(self.device) for k, v in self._sums.items()}
        if "train" not in self._sums:
            self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        self._sums["train"] = torch.zeros(2, device=self.device)  # loss sum, images

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, _ = batch  # the labels are never used
        images = (images - self.mean) / self.std
        loss, _, _ = self.mae(images)
        self._accumulate("train", loss.detach(), len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._sums["val"] = torch.zeros(2, device=self.device)
        self._val_masks = torch.Generator(device=self.device).manual_seed(VALIDATION_MASK_SEED)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, _ = batch
        loss, _, _ = self.mae((images - self.mean) / self.std, generator=self._val_masks)
        self._accumulate("val", loss, len(images))

    def _accumulate(self, split: str, loss: torch.Tensor, n: int) -> None:
        sums = self._sums[split]  # loss sum, images
        sums[0] += loss * n
        sums[1] += n

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        val = self.trainer.strategy.reduce(self._sums["val"], reduce_op="sum")
        train = self.trainer.strategy.reduce(self._sums["train"], reduce_op="sum")
        val_loss = float(val[0] / val[1].clamp(min=1))
        train_loss = float(train[0] / train[1]) if train[1] > 0 else math.nan
        self.log_dict({"val/loss": val_loss, "train/loss": train_loss}, rank_zero_only=True)
        self.history.append({"epoch": self.current_epoch + 1, "train_loss": train_loss,
                             "val_loss": val_loss, "lr": self._lr()})
        self.grids.append(self.reconstruction_grid().cpu())

    def on_train_epoch_end(self) -> None:
        self.train_samples += int(self.trainer.strategy.reduce(self._sums["train"],
                                                               reduce_op="sum")[1])

    @torch.no_grad()
    def reconstruction_grid(self) -> torch.Tensor:
        """(3, n, C, H, W): the fixed images, their visible patches (hidden ones blank) and
        the reconstruction, with the same masks every epoch."""
        generator = torch.Generator(device=self.device).manual_seed(VALIDATION_MASK_SEED)
        images = self.grid_images
        _, predicted, mask = self.mae(images, generator=generator)
        patch, shape = self.mae.encoder.config.patch_size, list(images.shape[1:])
        hidden = mask[..., None].bool()  # (B, N, 1)
        masked = unpatchify(patchify(images, patch).masked_fill(hidden, float(images.min())),
                            patch, shape)
        return torch.stack([images, masked, self.mae.reconstruct(images, predicted, mask)])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["masked_pretraining"] = {"grids": list(self.grids)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.grids = list(checkpoint.get("masked_pretraining", {}).get("grids", []))

    def _lr(self) -> float:
        return self.trainer.optimizers[0].param_groups[0]["lr"]
