"""The sentiment config: its shape and value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from forgeml.schemas import (
    CrossValidationSchema,
    EarlyStoppingSchema,
    LoggerSchema,
    PathsSchema,
    PipelineSchema,
    TextCompressSchema,
    cv_problems,
)


@dataclass
class TextSplitSchema:
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    seed: int = MISSING


@dataclass
class TextTokenizerSchema:
    package: str = MISSING
    file: str = MISSING


@dataclass
class TextAnonymiseSchema:
    mask_pii: Any = MISSING  # true | false | auto (your own text: data.source=table)
    min_group_size: int = MISSING


@dataclass
class ReviewDataSchema:
    name: str = MISSING
    source: Any = MISSING
    class_names: list[str] = MISSING
    tokenizer: TextTokenizerSchema = field(default_factory=TextTokenizerSchema)
    split: TextSplitSchema = field(default_factory=TextSplitSchema)
    anonymise: TextAnonymiseSchema = field(default_factory=TextAnonymiseSchema)


@dataclass
class SentimentTrainSchema:
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    warmup_fraction: float = MISSING
    layer_lr_decay: float = MISSING
    head_lr_multiplier: float = MISSING
    train_limit: int | None = MISSING
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING


@dataclass
class SentimentEvaluateSchema:
    bootstrap_samples: int = MISSING
    confidence: float = MISSING
    calibration_bins: int = MISSING
    length_buckets: list[int] = MISSING
    confident_errors: int = MISSING
    cost_texts: int = MISSING


@dataclass
class SentimentPathsSchema(PathsSchema):
    baselines: str = MISSING  # where the comparison models are kept


@dataclass
class SentimentSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: ReviewDataSchema = field(default_factory=ReviewDataSchema)
    model: Any = MISSING
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: SentimentTrainSchema = field(default_factory=SentimentTrainSchema)
    optimizer: Any = MISSING
    evaluate: SentimentEvaluateSchema = field(default_factory=SentimentEvaluateSchema)
    cv: CrossValidationSchema = field(default_factory=CrossValidationSchema)
    baselines: Any = MISSING
    compress: TextCompressSchema = field(default_factory=TextCompressSchema)
    paths: SentimentPathsSchema = field(default_factory=SentimentPathsSchema)


BASELINE_KEYS = {"label", "model", "optimizer", "trainer", "train"}


def sentiment_problems(cfg: DictConfig) -> list[str]:
    problems = []
    if cfg.data.anonymise.mask_pii not in (True, False, "auto"):
        problems.append("data.anonymise.mask_pii must be true, false or auto")
    if cfg.data.anonymise.min_group_size < 1:
        problems.append("data.anonymise.min_group_size must be >= 1")
    split = cfg.data.split
    if not (0 < split.val_fraction < 1 and 0 < split.test_fraction < 1
            and split.val_fraction + split.test_fraction < 1):
        problems.append("data.split.val_fraction and test_fraction must be in (0, 1) and sum "
                        "to less than 1")
    if len(cfg.data.class_names) != 2:
        problems.append("data.class_names must name exactly two classes (negative, positive)")
    max_length = cfg.model.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 3):
        problems.append("model.max_length must be an integer >= 3 ([CLS] + a token + [SEP])")
    if not 0 <= cfg.train.warmup_fraction < 1:
        problems.append("train.warmup_fraction must be in [0, 1)")
    if not 0 < cfg.train.layer_lr_decay <= 1:
        problems.append("train.layer_lr_decay must be in (0, 1]")
    if list(cfg.evaluate.length_buckets) != sorted(set(cfg.evaluate.length_buckets)) \
            or not cfg.evaluate.length_buckets:
        problems.append("evaluate.length_buckets must be increasing word counts, e.g. [10, 20]")
    for name, entry in (cfg.get("baselines") or {}).items():
        unknown = set(entry) - BASELINE_KEYS
        if unknown or "model" not in entry:
            problems.append(f"baselines.{name} needs a `model` and may set only "
                            f"{sorted(BASELINE_KEYS)} (unknown: {sorted(unknown)})")
    if cfg.get("baselines") and not cfg.paths.get("baselines"):
        problems.append("paths.baselines must say where the baselines stage keeps its models")
    unknown = [m for m in cfg.cv.models if m != "model" and m not in (cfg.get("baselines") or {})]
    if unknown:
        problems.append(f"cv.models {unknown}: name `model` or keys of baselines")
    return problems + cv_problems(cfg.cv)
