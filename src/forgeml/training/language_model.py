"""The LightningModule that trains a next-token model: cross-entropy, AdamW with linear warm-up and
cosine decay (stepped per optimizer step), validation loss every `val_check_interval` steps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from forgeml.errors import TrainingError


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
                 max_steps: int, min_lr_ratio: float = 0.1,
                 check_finite_every_n_steps: int = 50):
        super().__init__()
        self.network = network
        self.make_optimizer = optimizer
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, min_lr_ratio
        self.check_every = max(1, check_finite_every_n_steps)
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.train_tokens = 0
        self._train_sum = torch.zeros(2)  # loss sum, steps since the last validation
        self._val_sum = torch.zeros(2)  # loss sum, batches
        self._clock: float | None = None

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
        self._clock = time.perf_counter()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self.network(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        self._train_sum[0] += loss.detach()
        self._train_sum[1] += 1
        self.train_tokens += y.numel()
        if batch_idx % self.check_every == 0 and not torch.isfinite(loss):
            raise TrainingError(
                f"Training diverged: loss is {loss.item()} at step {self.global_step}. Lower "
                f"optimizer.lr (now {self._lr():.3g}) or raise train.warmup_steps.")
        return loss

    # --- validation: timing stops while it runs, so tokens/s is training throughput only ---
    def on_validation_epoch_start(self) -> None:
        if self._clock is not None:
            self.train_seconds += time.perf_counter() - self._clock
            self._clock = None
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
        if not math.isfinite(val_loss):
            raise TrainingError(f"Validation loss is {val_loss} at step {self.global_step}: "
                                "training diverged. Lower optimizer.lr.")
        world = self.trainer.world_size
        tokens_per_s = self.train_tokens * world / self.train_seconds if self.train_seconds else 0
        self.log_dict({"val/loss": val_loss, "train/loss": train_loss, "train/lr": self._lr(),
                       "train/tokens_per_s": tokens_per_s}, rank_zero_only=True)
        self.history.append({"step": self.global_step, "train_loss": train_loss,
                             "val_loss": val_loss, "lr": self._lr(),
                             "tokens_per_s": tokens_per_s})

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._clock = time.perf_counter()

    def on_train_end(self) -> None:
        if self._clock is not None:
            self.train_seconds += time.perf_counter() - self._clock
            self._clock = None

    def _lr(self) -> float:
        return self.trainer.optimizers[0].param_groups[0]["lr"]
