"""The LightningModule that trains an implicit-feedback recommender: binary cross-entropy on
observed (label 1) vs sampled (label 0) user-item pairs; validation ranks each user's held-out
item among its frozen sampled negatives (HR@K, NDCG@K)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from forgeml.models.ranker import score_candidates
from forgeml.ranking_metrics import torch_rank_of_target
from forgeml.training.private_loss import PerRowBCE, PrivateLoss


class Recommender(PrivateLoss, pl.LightningModule):
    # Under DP-SGD a batch is interactions, each with its negatives: (B, 1 + n) logits, and
    # one example's loss is its row's mean.
    private_criterion = PerRowBCE()

    def __init__(self, network: nn.Module, optimizer: Callable, k: int):
        super().__init__()
        self.network = network
        self.make_optimizer = optimizer
        self.k = k
        self.history: list[dict[str, float]] = []
        self.train_pairs = 0
        self._sums: dict[str, torch.Tensor] = {}

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.network(pairs)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.parameters())

    def on_train_start(self) -> None:
        # Resumed mid-epoch, Lightning skips on_train_epoch_start: the epoch's sums come from
        # the checkpoint (on the CPU there), or start here.
        self._sums = {k: v.to(self.device) for k, v in self._sums.items()}
        if "train" not in self._sums:
            self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        self._sums["train"] = torch.zeros(2, device=self.device)  # loss sum, pairs

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        pairs, labels = batch  # (B, 2) and (B,); or (B, 1 + n, 2) and (B, 1 + n) under DP-SGD
        loss = self.training_loss(self.network(pairs), labels, F.binary_cross_entropy_with_logits)
        pairs_seen = torch.tensor(float(labels.numel()), device=self.device)
        self._sums["train"] += torch.stack([loss.detach() * pairs_seen, pairs_seen])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._sums["val"] = torch.zeros(4, device=self.device)  # loss sum, hits, ndcg, rows

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        users, candidates = batch
        scores = score_candidates(self.network, users, candidates)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        loss = F.binary_cross_entropy_with_logits(scores, labels, reduction="none").mean(dim=1)
        rank = torch_rank_of_target(scores).float()
        hit = (rank < self.k).float()
        gain = hit / torch.log2(rank + 2.0)
        self._sums["val"] += torch.stack([loss.sum(), hit.sum(), gain.sum(),
                                          torch.tensor(float(len(users)), device=self.device)])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        val = self.trainer.strategy.reduce(self._sums["val"], reduce_op="sum")
        rows = max(float(val[3]), 1.0)
        self.log_dict({"val/loss": float(val[0]) / rows,
                       f"val/hr_at_{self.k}": float(val[1]) / rows,
                       f"val/ndcg_at_{self.k}": float(val[2]) / rows})

    def on_train_epoch_end(self) -> None:
        train = self.trainer.strategy.reduce(self._sums["train"], reduce_op="sum")
        self.train_pairs += int(train[1])
        loss = float(train[0] / train[1].clamp(min=1))
        self.log("train/loss", loss)
        metrics = self.trainer.callback_metrics
        self.history.append({
            "epoch": self.current_epoch + 1, "train_loss": loss,
            "val_loss": float(metrics.get("val/loss", float("nan"))),
            "val_hr": float(metrics.get(f"val/hr_at_{self.k}", float("nan"))),
            "val_ndcg": float(metrics.get(f"val/ndcg_at_{self.k}", float("nan"))),
            **({"epsilon": float(metrics["privacy/epsilon"])}  # logged by the DP-SGD callback
               if "privacy/epsilon" in metrics else {}),
        })
