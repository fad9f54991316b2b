"""Compose configs from conf/ (Hydra), write and read params.yaml, validate, instantiate."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from forgeml.errors import ConfigError
from forgeml.io import atomic_write_text

DEFAULT_PARAMS = "params.yaml"


# --- schema: unknown keys and wrong types fail with the key's full name --------------------------
@dataclass
class PipelineSchema:
    name: str = "digits"
    task: str = "classification"


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


SCHEMAS: dict[str, type] = {"classification": ClassificationSchema}


# --- composing ----------------------------------------------------------------------------------
def find_config_dir(start: Path | None = None) -> Path:
    """The nearest conf/ (with config.yaml) at or above `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder / "conf"
    raise ConfigError(f"No conf/config.yaml found in {here} or any parent folder.")


def compose(overrides: list[str] | None = None, config_dir: Path | None = None) -> DictConfig:
    """Compose conf/ with Hydra overrides, exactly as `dvc exp run -S` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    config_dir = Path(config_dir) if config_dir else find_config_dir()
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"Cannot compose conf/ with overrides {overrides or []}: {err}") from None
    OmegaConf.resolve(cfg)
    validate(cfg, source="composed config")
    return cfg


def write_params(cfg: DictConfig, path: str | Path = DEFAULT_PARAMS) -> Path:
    text = yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True), sort_keys=False)
    return atomic_write_text(path, text)


def load_params(path: str | Path = DEFAULT_PARAMS) -> DictConfig:
    """Read a composed params file (what `dvc repro` stages see) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found. Compose it from conf/ with `forgeml compose` (or `dvc exp run`)."
        )
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config sections.")
    validate(cfg, source=str(path))
    return cfg


def validate(cfg: DictConfig, source: str = DEFAULT_PARAMS) -> None:
    task = OmegaConf.select(cfg, "pipeline.task", default="classification")
    schema = SCHEMAS.get(task)
    if schema is None:
        raise ConfigError(f"{source}: unknown pipeline.task '{task}'. Known: {sorted(SCHEMAS)}.")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        OmegaConf.to_container(merged, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        reason = str(err).splitlines()[0]
        raise ConfigError(
            f"{source}: invalid config key '{key}': {reason}. "
            "Fix it in conf/ (or the -S override) and recompose."
        ) from None
    _check_values(cfg, source)


def _check_values(cfg: DictConfig, source: str) -> None:
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
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems) + ".")


def instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with an error that names the config section."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as err:
        raise ConfigError(f"Cannot build '{what}' from its config: {err}") from None


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The config as dotted keys, for MLflow params."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def config_hash(cfg: DictConfig) -> str:
    payload = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
