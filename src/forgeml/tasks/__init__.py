"""The registry of tasks. `pipeline.task` in the composed config names one; each task package
declares its stages, schema and hooks in its `TASK` (see `interface.Task`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forgeml import config
from forgeml.errors import ConfigError
from forgeml.tasks import classification, generative, lm, pretraining, recsys, sentiment
from forgeml.tasks.interface import Task

TASKS: dict[str, Task] = {task.name: task for task in (
    classification.TASK, generative.TASK, lm.TASK, pretraining.TASK, recsys.TASK, sentiment.TASK)}


def task_named(name: str, source: str = "params.yaml") -> Task:
    if name not in TASKS:
        raise ConfigError(f"{source}: unknown pipeline.task '{name}'. Known: "
                          f"{', '.join(sorted(TASKS))}.")
    return TASKS[name]


def task_of(cfg: DictConfig, source: str = "params.yaml") -> Task:
    return task_named(OmegaConf.select(cfg, "pipeline.task", default="classification"), source)


def validated(cfg: DictConfig, source: str) -> DictConfig:
    """`cfg` checked against the schema of the task it names."""
    task = task_of(cfg, source)
    config.validate(cfg, task.schema, task.problems, source)
    return cfg


def load_params(path: str | Path = config.DEFAULT_PARAMS) -> DictConfig:
    """A composed params file, read and validated: what every stage and command runs on."""
    return validated(config.read_params(path), str(path))


def compose(overrides: list[str] | None = None, config_dir: Path | None = None) -> DictConfig:
    """conf/ composed with Hydra overrides (as `dvc exp run -S` does) and validated."""
    return validated(config.compose(overrides, config_dir), "composed config")
