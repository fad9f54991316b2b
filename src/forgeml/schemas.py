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


# --- classification -------------------------------------------------------------------------------
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
    if not 0 < cfg.compress.prune_amount < 1:
        problems.append("compress.prune_amount must be in (0, 1)")
    if cfg.evaluate.membership_examples < 0:
        problems.append("evaluate.membership_examples must be >= 0 (0: off)")
    return (problems + compress_problems(cfg.compress) + cv_problems(cfg.cv)
            + privacy_problems(cfg))


def compress_problems(compress: DictConfig) -> list[str]:
    problems = []
    if not 0 <= compress.alpha <= 1 or compress.temperature <= 0:
        problems.append("compress.alpha must be in [0, 1] and compress.temperature > 0")
    if min(compress.threads, compress.latency_calls, compress.throughput_batch) < 1:
        problems.append("compress.threads, latency_calls and throughput_batch must be >= 1")
    return problems


# --- language modelling ---------------------------------------------------------------------------
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    if cfg.evaluate.membership_examples < 0:
        problems.append("evaluate.membership_examples must be >= 0 (0: no membership attack)")
    return problems + privacy_problems(cfg)


# --- sentiment -----------------------------------------------------------------------------------
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
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


# --- generative (GAN) ----------------------------------------------------------------------------
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    if len(cfg.data.class_names) != cfg.data.num_classes:
        problems.append(f"data.class_names has {len(cfg.data.class_names)} names but "
                        f"data.num_classes is {cfg.data.num_classes}")
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


# --- self-supervised pre-training ----------------------------------------------------------------
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
    if not 0 < cfg.evaluate.confidence < 1:
        problems.append("evaluate.confidence must be in (0, 1)")
    if len(cfg.data.class_names) != cfg.data.num_classes:
        problems.append(f"data.class_names has {len(cfg.data.class_names)} names but "
                        f"data.num_classes is {cfg.data.num_classes}")
    return problems
