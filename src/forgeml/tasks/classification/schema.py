"""The image classification config: its shape and value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from forgeml.schemas import (
    CompressSchema,
    CrossValidationSchema,
    EvaluateSchema,
    ImageDataSchema,
    LoggerSchema,
    PathsSchema,
    PipelineSchema,
    PrivacySchema,
    TrainSchema,
    compress_problems,
    cv_problems,
    privacy_problems,
)


@dataclass
class ClassificationSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: ImageDataSchema = field(default_factory=ImageDataSchema)
    model: Any = MISSING
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: TrainSchema = field(default_factory=TrainSchema)
    optimizer: Any = MISSING
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    privacy: PrivacySchema = field(default_factory=PrivacySchema)
    cv: CrossValidationSchema = field(default_factory=CrossValidationSchema)
    compress: CompressSchema = field(default_factory=CompressSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)


def classification_problems(cfg: DictConfig) -> list[str]:
    problems = []
    split = cfg.data.split
    if not (0 <= split.val_fraction < 1 and 0 <= split.test_fraction < 1):
        problems.append("data.split fractions must be in [0, 1)")
    if split.val_fraction + split.test_fraction >= 1:
        problems.append("data.split.val_fraction + test_fraction must be < 1")
    if cfg.train.batch_size < 1 or cfg.train.eval_batch_size < 1:
        problems.append("train.batch_size and train.eval_batch_size must be >= 1")
    if cfg.train.early_stopping.mode not in ("min", "max"):
        problems.append("train.early_stopping.mode must be 'min' or 'max'")
    if not 0 < cfg.compress.prune_amount < 1:
        problems.append("compress.prune_amount must be in (0, 1)")
    if cfg.evaluate.membership_examples < 0:
        problems.append("evaluate.membership_examples must be >= 0 (0: off)")
    return (problems + compress_problems(cfg.compress) + cv_problems(cfg.cv)
            + privacy_problems(cfg))
