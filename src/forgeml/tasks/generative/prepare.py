"""prepare (generative): the image classification pipelines' prepare stage, unchanged: the same
validated, de-duplicated, stratified splits and data card (the GAN learns from the train split,
validates on val, and is scored against test)."""

from __future__ import annotations

from omegaconf import DictConfig

from forgeml.tasks.classification import prepare as classification_prepare


def prepare(cfg: DictConfig) -> dict:
    return classification_prepare.prepare(cfg)


def summarize(cfg: DictConfig, card: dict) -> str:
    return classification_prepare.summarize(cfg, card)
