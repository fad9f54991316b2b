"""The language-model config: its shape and value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from forgeml.schemas import LoggerSchema, PathsSchema, PipelineSchema


@dataclass
class TokenizerSchema:
    kind: str = MISSING
    vocab_size: int = MISSING
    min_frequency: int = MISSING


@dataclass
class WorkSplitSchema:
    val_works: list[str] = MISSING
    test_works: list[str] = MISSING


@dataclass
class TextDataSchema:
    name: str = MISSING
    source: Any = MISSING
    tokenizer: TokenizerSchema = field(default_factory=TokenizerSchema)
    split: WorkSplitSchema = field(default_factory=WorkSplitSchema)


@dataclass
class LMTrainSchema:
    batch_size: int = MISSING
    val_batches: int = MISSING
    warmup_steps: int = MISSING
    min_lr_ratio: float = MISSING
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING


@dataclass
class SamplesSchema:
    prompts: list[str] = MISSING
    temperatures: list[float] = MISSING
    max_new_tokens: int = MISSING
    top_k: int | None = MISSING
    seed: int = MISSING


@dataclass
class LMEvaluateSchema:
    eval_batch_size: int = MISSING
    bootstrap_samples: int = MISSING
    confidence: float = MISSING
    bigram_smoothing: float = MISSING
    samples: SamplesSchema = field(default_factory=SamplesSchema)


@dataclass
class LMSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: TextDataSchema = field(default_factory=TextDataSchema)
    model: Any = MISSING
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: LMTrainSchema = field(default_factory=LMTrainSchema)
    optimizer: Any = MISSING
    evaluate: LMEvaluateSchema = field(default_factory=LMEvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)


def lm_problems(cfg: DictConfig) -> list[str]:
    from forgeml.data.tokenizer import KINDS

    problems = []
    if cfg.data.tokenizer.kind not in KINDS:
        problems.append(f"data.tokenizer.kind '{cfg.data.tokenizer.kind}' is unknown; choose one "
                        f"of: {', '.join(KINDS)}")
    if not isinstance(cfg.model.get("block_size"), int) or cfg.model.block_size < 1:
        problems.append("model.block_size must be a positive integer")
    n_embd, n_head = cfg.model.get("n_embd"), cfg.model.get("n_head")
    if isinstance(n_embd, int) and isinstance(n_head, int) and (n_head < 1 or n_embd % n_head):
        problems.append(f"model.n_embd ({n_embd}) must be divisible by model.n_head ({n_head}): "
                        "each attention head takes an equal share of the embedding")
    max_steps = cfg.trainer.get("max_steps", -1)
    if not isinstance(max_steps, int) or max_steps < 1:
        problems.append("trainer.max_steps must be a positive integer (the step budget)")
    elif cfg.train.warmup_steps >= max_steps:
        problems.append(f"train.warmup_steps ({cfg.train.warmup_steps}) must be below "
                        f"trainer.max_steps ({max_steps})")
    if cfg.train.batch_size < 1 or cfg.train.val_batches < 1:
        problems.append("train.batch_size and train.val_batches must be >= 1")
    if not 0 <= cfg.train.min_lr_ratio <= 1:
        problems.append("train.min_lr_ratio must be in [0, 1]")
    if any(t <= 0 for t in cfg.evaluate.samples.temperatures):
        problems.append("evaluate.samples.temperatures must be > 0")
    return problems
