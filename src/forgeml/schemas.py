"""The shape of a composed config, per task: unknown keys and wrong types fail with the key's full
name (OmegaConf structured configs), and value checks say what to fix. Types only: every value
lives in conf/ (the one source of defaults), so a key missing from params.yaml is named too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


# --- shared by every task -------------------------------------------------------------------------
@dataclass
class PipelineSchema:
    name: str = MISSING
    task: str = MISSING
    dvc_file: str = MISSING


@dataclass
class LoggerSchema:
    tracking_uri: str | None = MISSING
    experiment_name: str = MISSING
    log_model: bool = MISSING
    connect_timeout_s: float = MISSING
    system_metrics_interval_s: float | None = MISSING  # CPU/memory/GPU samples; 0: off


@dataclass
class PathsSchema:
    prepared: str = MISSING
    models: str = MISSING
    metrics: str = MISSING
    plots: str = MISSING
    eval: str = MISSING
    reports: str = MISSING


# --- shared by several tasks ---------------------------------------------------------------------
@dataclass
class EarlyStoppingSchema:
    enabled: bool = MISSING
    monitor: str = MISSING
    mode: str = MISSING
    patience: int = MISSING


@dataclass
class TrainSchema:
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    check_finite_every_n_steps: int = MISSING
    progress_refresh_steps: int = MISSING


@dataclass
class SplitSchema:
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    seed: int = MISSING


@dataclass
class AugmentSchema:
    enabled: bool = MISSING
    max_shift_px: float = MISSING
    max_rotation_deg: float = MISSING


@dataclass
class ImageDataSchema:
    name: str = MISSING
    source: Any = MISSING
    image_shape: list[int] = MISSING
    num_classes: int = MISSING
    class_names: list[str] = MISSING
    split: SplitSchema = field(default_factory=SplitSchema)
    dedupe: bool = MISSING
    augment: AugmentSchema = field(default_factory=AugmentSchema)


@dataclass
class EvaluateSchema:
    bootstrap_samples: int = MISSING
    confidence: float = MISSING
    calibration_bins: int = MISSING
    baseline: str | None = MISSING
    max_misclassified_shown: int = MISSING
    membership_examples: int = MISSING  # per side of the membership-inference check; 0: off


@dataclass
class PrivacySchema:
    """DP-SGD (conf/privacy/): enabled false trains without it."""

    enabled: bool = MISSING
    target_epsilon: float = MISSING
    delta: float | None = MISSING
    max_grad_norm: float = MISSING
    noise_multiplier: float | None = MISSING
    accountant: str = MISSING
    fix_layers: bool = MISSING
    noise_seed: int | None = MISSING


PRIVACY_ACCOUNTANTS = ("rdp", "prv", "gdp")  # Opacus' accountants


def privacy_settings_problems(privacy: DictConfig) -> list[str]:
    """The privacy group's own value checks (δ against 1/N needs the data: accounting.check)."""
    if not privacy.enabled:
        return []
    problems = []
    if privacy.noise_multiplier is None and not privacy.target_epsilon > 0:
        problems.append(f"privacy.target_epsilon={privacy.target_epsilon} must be > 0 (smaller "
                        "is more private; 1 to 10 is usual)")
    if privacy.noise_multiplier is not None and not privacy.noise_multiplier > 0:
        problems.append("privacy.noise_multiplier must be > 0 (or null: derived from "
                        "target_epsilon)")
    if privacy.delta is not None and not 0 < privacy.delta < 1:
        problems.append(f"privacy.delta={privacy.delta} must be in (0, 1/N) (null: 1/N)")
    if not privacy.max_grad_norm > 0:
        problems.append("privacy.max_grad_norm must be > 0")
    if privacy.accountant not in PRIVACY_ACCOUNTANTS:
        problems.append(f"privacy.accountant must be one of {', '.join(PRIVACY_ACCOUNTANTS)}")
    return problems


def several_devices(trainer: DictConfig) -> bool:
    """Whether a trainer config trains on more than one device or node (DDP)."""
    return trainer.get("devices", 1) not in (1, "1", "auto") or trainer.get("num_nodes", 1) != 1


def privacy_problems(cfg: DictConfig) -> list[str]:
    problems = privacy_settings_problems(cfg.privacy)
    if cfg.privacy.enabled:
        trainer = cfg.trainer
        if several_devices(trainer) and trainer.get("strategy", "auto") not in ("ddp", "auto"):
            problems.append("privacy=dp across devices runs on DDP: set trainer.strategy=ddp")
        if trainer.get("gradient_clip_val"):
            problems.append("privacy=dp clips each example's gradient itself "
                            "(privacy.max_grad_norm): set trainer.gradient_clip_val=null")
        if str(trainer.get("precision", "32-true")) not in ("32", "32-true"):
            problems.append("privacy=dp needs trainer.precision=32-true (per-example gradients "
                            "in 32-bit)")
    return problems


@dataclass
class CrossValidationSchema:
    """The cv stage (k-fold over train + val); folds 0: off."""

    folds: int = MISSING
    seed: int = MISSING
    models: list[str] = MISSING
    max_epochs: int | None = MISSING


def cv_problems(cv: DictConfig) -> list[str]:
    problems = []
    if cv.folds != 0 and cv.folds < 2:
        problems.append(f"cv.folds={cv.folds}: k-fold needs at least 2 folds (0: off)")
    if not cv.models:
        problems.append("cv.models must name at least one model")
    if cv.max_epochs is not None and cv.max_epochs < 1:
        problems.append("cv.max_epochs must be >= 1 (or null: trainer.max_epochs)")
    return problems


@dataclass
class CompressSchema:
    """The compress stage: what is compared, and how latency is measured."""

    threads: int = MISSING  # intra-op threads of every latency and throughput figure
    latency_calls: int = MISSING  # timed batch-1 calls per model (p50, p99)
    throughput_batch: int = MISSING  # batch size of the throughput figure
    throughput_seconds: float = MISSING  # how long the throughput figure is measured
    int8_max_drop: float = MISSING  # accuracy points the int8 model may lose (the gate)
    prune_amount: float = MISSING  # share of channels / units / heads removed per layer
    finetune_epochs: int = MISSING  # training of the pruned model after pruning
    student: Any = MISSING  # the distilled student's model config
    temperature: float = MISSING  # softening of teacher and student logits
    alpha: float = MISSING  # weight of the soft (KL) loss; 1 - alpha on the labels
    distill_epochs: int = MISSING
    lr: float = MISSING  # Adam, for fine-tuning and distillation


@dataclass
class TextCompressSchema(CompressSchema):
    """The sentiment compress stage: the transformer fine-tunes back at its own learning rate."""

    finetune_lr: float = MISSING  # Adam, for the pruned transformer (`lr`: the student)
    batch_size: int = MISSING  # of fine-tuning and distillation


def compress_problems(compress: DictConfig) -> list[str]:
    problems = []
    if not 0 <= compress.alpha <= 1 or compress.temperature <= 0:
        problems.append("compress.alpha must be in [0, 1] and compress.temperature > 0")
    if min(compress.threads, compress.latency_calls, compress.throughput_batch) < 1:
        problems.append("compress.threads, latency_calls and throughput_batch must be >= 1")
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
    """What every pipeline's config must satisfy: a safe name, an interval level in (0, 1), as
    many class names as classes, and no credentials (params.yaml is tracked by git and every
    param is logged to MLflow)."""
    from forgeml.credentials import has_password
    from forgeml.names import NAME

    problems = []
    name = OmegaConf.select(cfg, "pipeline.name", default=None)
    if name is not None and not NAME.fullmatch(str(name)):
        problems.append(f"pipeline.name {str(name)!r} must be lower-case letters, digits, '_' "
                        "or '-' (it names files, locks and MLflow models)")
    confidence = OmegaConf.select(cfg, "evaluate.confidence", default=None)
    if confidence is not None and not 0 < confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    names, classes = (OmegaConf.select(cfg, f"data.{key}", default=None)
                      for key in ("class_names", "num_classes"))
    if names is not None and classes is not None and len(names) != classes:
        problems.append(f"data.class_names has {len(names)} names but data.num_classes is "
                        f"{classes}")
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
