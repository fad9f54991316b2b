"""features (generative): the classifier whose penultimate layer is the feature space of FID,
KID and nearest neighbours, and whose predictions judge conditional samples. It is the image
classification train stage on a derived config (its own model, epochs, output folder and MLflow
experiment `<experiment>-features`), so it is trained once and cached by DVC across GAN
experiments."""

from __future__ import annotations

from omegaconf import DictConfig

from forgeml.tasks.classification import train as classification_train
from forgeml.tasks.generative.network import features_config


def features(cfg: DictConfig) -> dict | None:
    return classification_train.train(features_config(cfg))


def summarize(cfg: DictConfig, record: dict) -> str:
    return (f"feature classifier: {record['epochs_trained']} epochs, best val acc "
            f"{record['best_val_acc']:.4f}; MLflow run {record['run_id']} "
            f"(experiment {cfg.logger.experiment_name}-features)")
