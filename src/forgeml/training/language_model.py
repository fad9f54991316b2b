"""The LightningModule that trains a next-token model: cross-entropy, AdamW with linear warm-up and
cosine decay (stepped per optimizer step), validation loss every `val_check_interval` steps."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from forgeml.training.callbacks import TrainingClock


def warmup_cosine(warmup_steps: int, max_steps: int, min_lr_ratio: float
                  ) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to `min_lr_ratio`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if step >= max_steps:
            return min_lr_ratio
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return min_lr_ratio + 0.5 * (1 - min_lr_ratio) * (1 + math.cos(math.pi * progress))

    return factor


def decay_groups(network: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (Linear, Embedding) only, not on biases and norms (nanoGPT)."""
    params = [p for p in network.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


class LanguageModel(pl.LightningModule):
    def __init__(self, network: nn.Module, optimizer: Callable, warmup_steps: int,
                 max_steps: int, min_lr_ratio: float, clock: TrainingClock):
        super().__init__()
        self.network = network
        self.make_optimizer = optimizer
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, min_lr_ratio
        self.clock = clock  # tokens/s in each validation row
        self.history: list[dict[str, float]] = []
        self.train_tokens = 0
        self._train_sum = torch.zeros(2)  # loss sum, steps since the last validation
        self._val_sum = torch.zeros(2)  # loss sum, batches

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.network(idx)

    def configure_optimizers(self):
        weight_decay = getattr(self.make_optimizer, "keywords", {}).get("weight_decay", 0.0)
        optimizer = self.make_optimizer(decay_groups(self.network, weight_decay))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(self.warmup_steps, self.max_steps, self.min_lr_ratio))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}

    # --- training ---
    def on_train_start(self) -> None:
        self._train_sum = torch.zeros(2, device=self.device)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self.network(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        self._train_sum[0] += loss.detach()
        self._train_sum[1] += 1
        self.train_tokens += y.numel()
        return loss

    # --- validation (the clock stops while it runs: tokens/s is training throughput only) ---
    def on_validation_epoch_start(self) -> None:
        self._val_sum = torch.zeros(2, device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.network(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        self._val_sum[0] += loss
        self._val_sum[1] += 1

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        val = self.trainer.strategy.reduce(self._val_sum, reduce_op="sum")
        val_loss = float(val[0] / val[1].clamp(min=1))
        train = self.trainer.strategy.reduce(self._train_sum, reduce_op="sum")
        train_loss = float(train[0] / train[1]) if train[1] > 0 else math.nan
        self._train_sum.zero_()
        world, seconds = self.trainer.world_size, self.clock.seconds
        tokens_per_s = self.train_tokens * world / seconds if seconds else 0
        self.log_dict({"val/loss": val_loss, "train/loss": train_loss, "train/lr": self._lr(),
                       "train/tokens_per_s": tokens_per_s}, rank_zero_only=True)
        self.history.append({"step": self.global_step, "train_loss": train_loss,
                             "val_loss": val_loss, "lr": self._lr(),
                             "tokens_per_s": tokens_per_s})

    def _lr(self) -> float:
        return self.trainer.optimizers[0].param_groups[0]["lr"]
