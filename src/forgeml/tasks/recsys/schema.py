"""The recommender config: its shape and value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from forgeml.schemas import (
    EarlyStoppingSchema,
    LoggerSchema,
    PathsSchema,
    PipelineSchema,
    PrivacySchema,
    privacy_problems,
)


@dataclass
class ImplicitSchema:
    min_rating: float | None = MISSING


@dataclass
class InteractionSplitSchema:
    protocol: str = MISSING
    val: str = MISSING
    cutoff: Any = MISSING  # ISO date string or unix seconds
    test_days: float | None = MISSING
    seed: int = MISSING


@dataclass
class AnonymiseSchema:
    pseudonymise_ids: bool = MISSING  # key: $FORGEML_PSEUDONYM_KEY(_FILE), never in config
    min_group_size: int = MISSING  # k: groups smaller than this are reported


@dataclass
class InteractionDataSchema:
    name: str = MISSING
    source: Any = MISSING
    implicit: ImplicitSchema = field(default_factory=ImplicitSchema)
    split: InteractionSplitSchema = field(default_factory=InteractionSplitSchema)
    anonymise: AnonymiseSchema = field(default_factory=AnonymiseSchema)


@dataclass
class RecsysTrainSchema:
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    num_negatives: int = MISSING
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING


@dataclass
class RecsysEvaluateSchema:
    k: int = MISSING
    num_negatives: int = MISSING
    full_ranking: bool = MISSING
    mf_factors: int = MISSING
    activity_buckets: list[int] = MISSING
    bootstrap_samples: int = MISSING
    confidence: float = MISSING
    example_users: int = MISSING
    membership_examples: int = MISSING


@dataclass
class RecsysSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: InteractionDataSchema = field(default_factory=InteractionDataSchema)
    model: Any = MISSING
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: RecsysTrainSchema = field(default_factory=RecsysTrainSchema)
    optimizer: Any = MISSING
    evaluate: RecsysEvaluateSchema = field(default_factory=RecsysEvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    privacy: PrivacySchema = field(default_factory=PrivacySchema)


def recsys_problems(cfg: DictConfig) -> list[str]:
    problems = []
    split = cfg.data.split
    if split.protocol not in ("leave_last_out", "time_cutoff"):
        problems.append(f"data.split.protocol '{split.protocol}' is unknown; use leave_last_out "
                        "or time_cutoff")
    if split.protocol == "time_cutoff" and split.cutoff is None:
        problems.append("data.split.protocol=time_cutoff needs data.split.cutoff (an ISO date "
                        "such as 1998-02-01, or unix seconds)")
    if cfg.evaluate.k < 1 or cfg.evaluate.num_negatives < cfg.evaluate.k:
        problems.append("evaluate.k must be >= 1 and <= evaluate.num_negatives")
    if cfg.train.num_negatives < 1 or cfg.train.batch_size < 1:
        problems.append("train.num_negatives and train.batch_size must be >= 1")
    if cfg.data.anonymise.min_group_size < 1:
        problems.append("data.anonymise.min_group_size must be >= 1")
    if list(cfg.evaluate.activity_buckets) != sorted(cfg.evaluate.activity_buckets):
        problems.append("evaluate.activity_buckets must be increasing")
    if cfg.train.early_stopping.mode not in ("min", "max"):
        problems.append("train.early_stopping.mode must be 'min' or 'max'")
    if cfg.evaluate.membership_examples < 0:
        problems.append("evaluate.membership_examples must be >= 0 (0: no membership attack)")
    return problems + privacy_problems(cfg)
