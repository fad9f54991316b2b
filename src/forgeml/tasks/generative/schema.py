"""The GAN config: its shape and value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from forgeml.schemas import (
    EarlyStoppingSchema,
    ImageDataSchema,
    LoggerSchema,
    PathsSchema,
    PipelineSchema,
)


@dataclass
class GanTrainSchema:
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING
    fid_samples: int = MISSING  # generated per epoch for the validation FID/KID
    grid_per_class: int = MISSING  # images per class in the fixed-noise grid
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)


@dataclass
class AdversarialSchema:
    loss: str = MISSING  # non_saturating | minimax
    label_smoothing: float = MISSING  # real targets are 1 - this (one-sided)
    ema_decay: float = MISSING  # of the evaluated generator's weights; 0: no averaging


@dataclass
class FeatureClassifierSchema:
    model: Any = MISSING  # the classifier whose penultimate layer is the feature space
    epochs: int = MISSING
    lr: float = MISSING


@dataclass
class GanEvaluateSchema:
    samples: int = MISSING  # generated images scored against the test split
    bootstrap_samples: int = MISSING  # fresh sample sets behind the FID/KID intervals
    confidence: float = MISSING
    memorisation_samples: int = MISSING  # samples matched to their nearest training image
    nearest_shown: int = MISSING


@dataclass
class GanPathsSchema(PathsSchema):
    features: str = MISSING  # the frozen classifier of the features stage


@dataclass
class GenerativeSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: ImageDataSchema = field(default_factory=ImageDataSchema)
    model: Any = MISSING
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: GanTrainSchema = field(default_factory=GanTrainSchema)
    optimizer: Any = MISSING  # instantiated once per network
    gan: AdversarialSchema = field(default_factory=AdversarialSchema)
    features: FeatureClassifierSchema = field(default_factory=FeatureClassifierSchema)
    evaluate: GanEvaluateSchema = field(default_factory=GanEvaluateSchema)
    paths: GanPathsSchema = field(default_factory=GanPathsSchema)


def generative_problems(cfg: DictConfig) -> list[str]:
    problems = []
    split = cfg.data.split
    if not (0 < split.val_fraction < 1 and 0 <= split.test_fraction < 1):
        problems.append("data.split.val_fraction must be in (0, 1): the validation FID needs "
                        "real images")
    _, height, width = cfg.data.image_shape
    if height % 4 or width % 4:
        problems.append(f"data.image_shape {list(cfg.data.image_shape)}: height and width must "
                        "be divisible by 4 for the DCGAN's two stride-2 layers")
    if cfg.gan.loss not in ("non_saturating", "minimax"):
        problems.append("gan.loss must be 'non_saturating' or 'minimax'")
    if not 0 <= cfg.gan.label_smoothing < 0.5:
        problems.append("gan.label_smoothing must be in [0, 0.5)")
    if not 0 <= cfg.gan.ema_decay < 1:
        problems.append("gan.ema_decay must be in [0, 1)")
    if min(cfg.train.fid_samples, cfg.evaluate.samples, cfg.evaluate.memorisation_samples) < 2:
        problems.append("train.fid_samples, evaluate.samples and memorisation_samples must be "
                        ">= 2")
    return problems
