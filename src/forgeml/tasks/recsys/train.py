"""train (recsys): fit the configured recommender (GMF, MLP or NeuMF) on training interactions
with negatives re-drawn every epoch; the checkpoint with the best validation NDCG@K is kept."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.data.interactions import TRAIN, VAL
from forgeml.io import atomic_write_text
from forgeml.saved_network import log_network
from forgeml.tasks.recsys.network import make_network
from forgeml.tracking import ChildOf
from forgeml.training.datamodules import InteractionDataModule
from forgeml.training.fitting import FittedRun, fit
from forgeml.training.privacy import differential_privacy
from forgeml.training.recommender import Recommender

# One prepared interaction, as MLflow schema entries (the run's dataset input).
COLUMNS = [{"name": "user", "type": "long"}, {"name": "item", "type": "long"}]


def train(cfg: DictConfig, *, child_of: ChildOf | None = None,
          callbacks: Sequence = ()) -> dict | None:
    """`child_of` and `callbacks`: when the training is part of a larger run (a sweep's
    trial with its pruning callback, a cross-validation fold)."""
    import pytorch_lightning as pl

    card = read_data_card(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    network = make_network(cfg, card)
    k = cfg.evaluate.k
    module = Recommender(network, optimizer=instantiate(cfg.optimizer, "optimizer"), k=k)
    # DP-SGD's example is one interaction with its negatives: what is clipped, and what a
    # neighbouring data set adds or removes.
    privacy = differential_privacy(cfg, card["counts"]["train"])
    inner = InteractionDataModule(cfg.paths.prepared, cfg.train.batch_size,
                                  cfg.train.eval_batch_size, cfg.train.num_negatives, cfg.seed,
                                  per_interaction=privacy is not None)
    datamodule = privacy.datamodule(inner) if privacy else inner

    def finish(fitted: FittedRun) -> dict:
        history, seconds = module.history, fitted.train_seconds
        summary = {
            "best_val_ndcg": fitted.best_score,
            "best_val_hr": max((h["val_hr"] for h in history), default=math.nan),
            "epochs_trained": len(history),
            "stopped_early": len(history) < cfg.trainer.max_epochs,
            "train_seconds": seconds,
            "train_pairs_per_second": module.train_pairs / seconds if seconds else 0.0,
            "parameters": sum(p.numel() for p in network.parameters()),
            **(privacy.summary() if privacy else {}),
        }
        # What `forgeml recommend` needs beside the model: ids, titles, what each user has seen.
        data = inner.data
        seen = fitted.staging / "seen.npz"
        known = np.isin(data.split, (TRAIN, VAL))
        np.savez_compressed(seen, user=data.user[known].astype(np.int32),
                            item=data.item[known].astype(np.int32))
        catalog = atomic_write_text(fitted.staging / "catalog.json", json.dumps(data.catalog))
        tracking.log_artifacts(fitted.uri, fitted.run_id, [seen, catalog], "recommender")
        if cfg.logger.log_model:
            example = np.array([[0, 0], [0, 1]], dtype=np.int64)
            log_network(fitted.uri, fitted.run_id, network, example)
        curve = "epoch,train_loss,val_loss,val_hr,val_ndcg\n" + "".join(
            f"{h['epoch']},{h['train_loss']:.6f},{h['val_loss']:.6f},{h['val_hr']:.6f},"
            f"{h['val_ndcg']:.6f}\n" for h in history)
        fitted.outputs.write_text(Path(cfg.paths.plots) / "learning_curve.csv", curve)
        return summary

    return fit(cfg, module, datamodule, card, finish, COLUMNS, extra_callbacks=list(callbacks),
               child_of=child_of, monitor=f"val/ndcg_at_{k}",
               mode="max",
               privacy=privacy)


def summarize(cfg: DictConfig, record: dict) -> str:
    private = (f"; DP-SGD ε={record['privacy_epsilon']:.2f} at δ={record['privacy_delta']:.1e}"
               if "privacy_epsilon" in record else "")
    return (f"trained {record['epochs_trained']} epochs in {record['train_seconds']:.0f} s "
            f"({record['train_pairs_per_second']:,.0f} pairs/s); best val NDCG@{cfg.evaluate.k} "
            f"{record['best_val_ndcg']:.4f}, HR@{cfg.evaluate.k} {record['best_val_hr']:.4f}"
            f"{private}; MLflow run {record['run_id']}")
