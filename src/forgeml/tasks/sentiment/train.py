"""train (sentiment): fit the configured text classifier (a Lightning network, or a scikit-learn
estimator such as TF-IDF + logistic regression) on the prepared split; log tokens/s, peak memory,
the learning curve and a text-in, label-out model into one MLflow run."""

from __future__ import annotations

import inspect
import math
import resource
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card
from forgeml.config import instantiate
from forgeml.data.reviews import package_file
from forgeml.data.text_batches import read_split
from forgeml.models.registry import instantiate_network
from forgeml.tasks.sentiment.predictor import (
    PREDICTOR_DIR,
    EstimatorTextPredictor,
    NeuralTextPredictor,
    TextPredictor,
)
from forgeml.tracking import ChildOf
from forgeml.training.fitting import FittedRun, fit, fit_estimator
from forgeml.training.text_datamodule import TextDataModule

# One prepared example, as MLflow schema entries (the run's dataset input).
COLUMNS = [{"name": "text", "type": "string"}, {"name": "label", "type": "long"}]


def tokenizer_file(cfg: DictConfig) -> Path:
    return package_file(cfg.data.tokenizer.package, cfg.data.tokenizer.file)


def build_model(cfg: DictConfig, num_classes: int):
    """The configured model: an nn.Module (gets num_classes, and vocab_size when it asks) or a
    scikit-learn estimator (gets nothing)."""
    from hydra.utils import get_object

    target = get_object(cfg.model._target_)
    accepted = inspect.signature(target).parameters
    extra = {}
    if "num_classes" in accepted:
        extra["num_classes"] = num_classes
    if "vocab_size" in accepted:
        from forgeml.data.text_batches import load_tokenizer

        extra["vocab_size"] = load_tokenizer(tokenizer_file(cfg), 8).get_vocab_size()
    return instantiate_network(cfg.model, **extra)


def peak_memory_mb(on_gpu: bool) -> float:
    """Peak GPU memory allocated by torch, or this process's peak resident memory (CPU)."""
    if on_gpu:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train(cfg: DictConfig, *, child_of: ChildOf | None = None,
          callbacks: Sequence = ()) -> dict | None:
    """`child_of` and `callbacks`: when the training is part of a larger run (a sweep's
    trial with its pruning callback, a cross-validation fold)."""
    import pytorch_lightning as pl
    from torch import nn

    card = read_data_card(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    class_names = card["class_names"]
    model = build_model(cfg, len(class_names))
    if not isinstance(model, nn.Module):
        return _train_estimator(cfg, model, card, child_of)
    return _train_network(cfg, model, card, child_of, callbacks)


def _train_estimator(cfg: DictConfig, estimator, card: dict, child_of: ChildOf | None
                     ) -> dict:
    texts, labels = read_split(cfg.paths.prepared, "train")
    val_texts, val_labels = read_split(cfg.paths.prepared, "val")
    if cfg.train.train_limit:
        texts, labels = texts[:cfg.train.train_limit], labels[:cfg.train.train_limit]
    predictor = EstimatorTextPredictor(estimator, card["class_names"])

    def finish(fitted: FittedRun) -> dict:
        val_acc = float((predictor.predict_proba(val_texts).argmax(1) == val_labels).mean())
        tracking.log_metrics(fitted.uri, fitted.run_id, {"val/acc": val_acc})
        summary = {"best_val_acc": val_acc, "epochs_trained": 1, "stopped_early": False,
                   "train_seconds": fitted.train_seconds,
                   "train_samples_per_second": len(texts) / max(fitted.train_seconds, 1e-9),
                   "peak_memory_mb": peak_memory_mb(False),
                   "parameters": _estimator_parameters(estimator),
                   "trainable_parameters": _estimator_parameters(estimator)}
        _save_and_log(cfg, fitted, predictor, val_texts)
        return summary

    return fit_estimator(cfg, estimator, texts, labels, card, finish, COLUMNS, child_of)


def _estimator_parameters(estimator) -> int:
    final = estimator[-1]
    return int(np.size(final.coef_) + np.size(final.intercept_)) if hasattr(final, "coef_") else 0


def _train_network(cfg: DictConfig, network, card: dict, child_of: ChildOf | None,
                   callbacks: Sequence) -> dict | None:
    from forgeml.training.classifier import Classifier

    group_options = {}
    if hasattr(network, "parameter_groups"):
        group_options = {"layer_lr_decay": cfg.train.layer_lr_decay,
                         "head_lr_multiplier": cfg.train.head_lr_multiplier}
    module = Classifier(network, optimizer=instantiate(cfg.optimizer, "optimizer"),
                        warmup_fraction=cfg.train.warmup_fraction, group_options=group_options)
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    datamodule = TextDataModule(cfg.paths.prepared, tokenizer_file(cfg), network.max_length,
                                cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed,
                                train_limit=cfg.train.train_limit)

    def finish(fitted: FittedRun) -> dict:
        history = module.history
        seconds = fitted.train_seconds
        summary = {
            "best_val_loss": fitted.best_score,
            "best_val_acc": max((h["val_acc"] for h in history), default=math.nan),
            "epochs_trained": len(history),
            "stopped_early": len(history) < cfg.trainer.max_epochs,
            "train_seconds": seconds,
            "train_samples_per_second": module.train_samples / seconds if seconds else 0.0,
            "train_tokens_per_second": module.train_tokens / seconds if seconds else 0.0,
            "peak_memory_mb": peak_memory_mb(on_gpu),
            "parameters": network.num_parameters(),
            "trainable_parameters": network.num_parameters(trainable_only=True),
        }
        val_texts, _ = read_split(cfg.paths.prepared, "val")
        predictor = NeuralTextPredictor(network.cpu(), tokenizer_file(cfg), card["class_names"],
                                        cfg.train.eval_batch_size)
        _save_and_log(cfg, fitted, predictor, val_texts)
        for checkpoint in fitted.staging.glob("*.ckpt"):  # the predictor holds the best weights
            checkpoint.unlink()
        curve = "epoch,train_loss,train_acc,val_loss,val_acc\n" + "".join(
            f"{h['epoch']},{h['train_loss']:.6f},{h['train_acc']:.6f},{h['val_loss']:.6f},"
            f"{h['val_acc']:.6f}\n" for h in history)
        fitted.outputs.write_text(Path(cfg.paths.plots) / "learning_curve.csv", curve)
        return summary

    monitor = cfg.train.early_stopping.monitor if cfg.train.early_stopping.enabled else "val/loss"
    mode = cfg.train.early_stopping.mode if cfg.train.early_stopping.enabled else "min"
    return fit(cfg, module, datamodule, card, finish, COLUMNS, extra_callbacks=list(callbacks),
               monitor=monitor, mode=mode, child_of=child_of)


def _save_and_log(cfg: DictConfig, fitted: FittedRun, predictor: TextPredictor,
                  examples: list[str]) -> None:
    folder = predictor.save(fitted.staging / PREDICTOR_DIR)
    if cfg.logger.log_model:
        from forgeml.tasks.sentiment.serving import log_model

        log_model(fitted.uri, fitted.run_id, predictor, folder, examples[:3])


def summarize(cfg: DictConfig, record: dict) -> str:
    speed = (f"{record['train_tokens_per_second']:,.0f} tokens/s"
             if "train_tokens_per_second" in record
             else f"{record['train_samples_per_second']:,.0f} texts/s")
    return (f"trained {record['epochs_trained']} epoch(s) in {record['train_seconds']:.0f} s "
            f"({speed}, peak memory {record['peak_memory_mb']:,.0f} MB); best val acc "
            f"{record['best_val_acc']:.4f}; MLflow run {record['run_id']}")
