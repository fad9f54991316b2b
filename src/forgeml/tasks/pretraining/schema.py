"""The self-supervised pre-training config: its shape and value checks."""

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
class LabelSubsetsSchema:
    fractions: list[float] = MISSING  # of the training split, each in (0, 1]
    seed: int = MISSING


@dataclass
class DecoderSchema:
    n_layer: int = MISSING
    n_embd: int = MISSING
    n_head: int = MISSING


@dataclass
class MaskedPretrainingSchema:
    mask_ratio: float = MISSING
    norm_pix_loss: bool = MISSING
    decoder: DecoderSchema = field(default_factory=DecoderSchema)
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_fraction: float = MISSING
    grid_images: int = MISSING


@dataclass
class FinetuneSchema:
    models: list[str] = MISSING  # of FINETUNE_MODELS
    steps: list[int] = MISSING  # one per label fraction
    validations: int = MISSING
    lr: dict[str, float] = MISSING  # per model
    layer_lr_decay: dict[str, float] = MISSING  # per ViT model; 1 = one rate for all layers
    weight_decay: float = MISSING
    cnn: Any = MISSING  # the seed CNN's config


@dataclass
class PretrainingTrainSchema:
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)


@dataclass
class PretrainingEvaluateSchema:
    bootstrap_samples: int = MISSING
    confidence: float = MISSING


@dataclass
class PretrainingSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = MISSING
    data: ImageDataSchema = field(default_factory=ImageDataSchema)
    model: Any = MISSING  # the ViT classifier whose encoder is pre-trained
    trainer: Any = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    labels: LabelSubsetsSchema = field(default_factory=LabelSubsetsSchema)
    pretrain: MaskedPretrainingSchema = field(default_factory=MaskedPretrainingSchema)
    finetune: FinetuneSchema = field(default_factory=FinetuneSchema)
    train: PretrainingTrainSchema = field(default_factory=PretrainingTrainSchema)
    evaluate: PretrainingEvaluateSchema = field(default_factory=PretrainingEvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)


# The models fine-tuned on every labelled subset: the pre-trained encoder end to end, a linear
# probe on it frozen, the identical network from random initialisation, the seed CNN.
FINETUNE_MODELS = ("pretrained", "probe", "scratch", "cnn")


def pretraining_problems(cfg: DictConfig) -> list[str]:
    problems = []
    fractions = list(cfg.labels.fractions)
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        problems.append(f"labels.fractions {fractions}: each must be in (0, 1] (a share of the "
                        "training split's labels), e.g. [0.01, 0.1, 1.0]")
    elif fractions != sorted(set(fractions)):
        problems.append(f"labels.fractions {fractions} must be increasing and distinct")
    if len(cfg.finetune.steps) != len(fractions) or any(s < 1 for s in cfg.finetune.steps):
        problems.append(f"finetune.steps needs one positive step count per label fraction "
                        f"({len(fractions)}), got {list(cfg.finetune.steps)}")
    unknown = [m for m in cfg.finetune.models if m not in FINETUNE_MODELS]
    if unknown or not cfg.finetune.models:
        problems.append(f"finetune.models {list(cfg.finetune.models)}: choose among "
                        f"{list(FINETUNE_MODELS)}")
    missing_lr = [m for m in cfg.finetune.models if m not in cfg.finetune.lr]
    if missing_lr:
        problems.append(f"finetune.lr has no learning rate for {missing_lr}")
    decays = {m: d for m, d in cfg.finetune.layer_lr_decay.items() if not 0 < d <= 1}
    if decays:
        problems.append(f"finetune.layer_lr_decay {decays}: each must be in (0, 1]")
    if cfg.finetune.validations < 1:
        problems.append("finetune.validations must be >= 1")
    if not 0 < cfg.pretrain.mask_ratio < 1:
        problems.append(f"pretrain.mask_ratio {cfg.pretrain.mask_ratio} must be in (0, 1)")
    _, height, width = cfg.data.image_shape
    patch = cfg.model.get("patch_size", 1)
    if patch < 1 or height % patch or width % patch:
        problems.append(f"model.patch_size {patch} must divide the image size {height}x{width}")
    if cfg.model.n_embd % 4 or cfg.model.n_embd % cfg.model.n_head:
        problems.append("model.n_embd must be divisible by 4 and by model.n_head")
    decoder = cfg.pretrain.decoder
    if decoder.n_embd % 4 or decoder.n_embd % decoder.n_head:
        problems.append("pretrain.decoder.n_embd must be divisible by 4 and by its n_head")
    if not 0 <= cfg.pretrain.warmup_fraction < 1:
        problems.append("pretrain.warmup_fraction must be in [0, 1)")
    if not 0 < cfg.data.split.val_fraction < 1:
        problems.append("data.split.val_fraction must be in (0, 1): models are selected on "
                        "the validation split")
    return problems
