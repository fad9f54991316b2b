"""train (lm): fit the GPT on the prepared tokens; log tokens/s, the learning curve, the model
and its tokenizer into one MLflow run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.saved_network import log_network
from forgeml.tasks.lm.network import make_network
from forgeml.tracking import ChildOf
from forgeml.training.callbacks import TrainingClock
from forgeml.training.datamodules import TokenDataModule
from forgeml.training.fitting import FittedRun, fit
from forgeml.training.language_model import LanguageModel


def token_columns(card: dict) -> list[dict]:
    """The prepared token stream, as an MLflow schema entry (the run's dataset input)."""
    return [{"name": "token", "type": "tensor", "tensor-spec": {
        "dtype": card.get("tokenizer", {}).get("dtype", "uint16"), "shape": [-1]}}]


def train(cfg: DictConfig, *, child_of: ChildOf | None = None,
          callbacks: Sequence = ()) -> dict | None:
    """`child_of` and `callbacks`: when the training is part of a larger run (a sweep's
    trial with its pruning callback, a cross-validation fold)."""
    import pytorch_lightning as pl

    card = read_data_card(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    network = make_network(cfg, card)
    clock = TrainingClock()
    module = LanguageModel(
        network, optimizer=instantiate(cfg.optimizer, "optimizer"),
        warmup_steps=cfg.train.warmup_steps, max_steps=cfg.trainer.max_steps,
        min_lr_ratio=cfg.train.min_lr_ratio, clock=clock)
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = TokenDataModule(cfg.paths.prepared, card["tokenizer"]["vocab_size"],
                                 cfg.model.block_size, cfg.train.batch_size,
                                 cfg.train.val_batches, cfg.seed, pin_memory=on_gpu)

    def finish(fitted: FittedRun) -> dict:
        history = module.history
        best = min(history, key=lambda h: h["val_loss"]) if history else {}
        seconds = fitted.train_seconds
        tokens_per_s = module.train_tokens * fitted.trainer.world_size / seconds \
            if seconds else 0.0
        summary = {
            "best_val_loss": fitted.best_score,
            "best_val_step": best.get("step", 0),
            "steps_trained": fitted.trainer.global_step,
            "train_seconds": seconds,
            "train_tokens_per_second": tokens_per_s,
            "parameters": network.num_parameters(),
        }
        tokenizer_file = Path(cfg.paths.prepared) / "tokenizer.json"
        tracking.log_artifacts(fitted.uri, fitted.run_id, [tokenizer_file], "config")
        if cfg.logger.log_model:
            example = datamodule.val_tokens[: cfg.model.block_size].astype("int64")[None, :]
            log_network(fitted.uri, fitted.run_id, network, example)
        curve = "step,train_loss,val_loss,lr,tokens_per_s\n" + "".join(
            f"{h['step']},{h['train_loss']:.6f},{h['val_loss']:.6f},{h['lr']:.6g},"
            f"{h['tokens_per_s']:.1f}\n" for h in history if math.isfinite(h["val_loss"]))
        fitted.outputs.write_text(Path(cfg.paths.plots) / "learning_curve.csv", curve)
        return summary

    return fit(cfg, module, datamodule, card, finish, token_columns(card),
               extra_callbacks=list(callbacks), child_of=child_of, clock=clock,
               divergence_advice="or raise train.warmup_steps", step_by_epoch=False)


def summarize(cfg: DictConfig, record: dict) -> str:
    return (f"trained {record['steps_trained']:,} steps in {record['train_seconds']:.0f} s "
            f"({record['train_tokens_per_second']:,.0f} tokens/s); best val loss "
            f"{record['best_val_loss']:.4f}; MLflow run {record['run_id']}")
