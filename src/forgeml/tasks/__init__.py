"""The registry of tasks: the one place that names them, by module, so that a stage imports only
its own task. `pipeline.task` in the composed config names one; each task package declares its
stages, schema and hooks in its `TASK` (see `interface.Task`). Adding a task: its own folder and
one line here."""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forgeml import config
from forgeml.errors import ConfigError
from forgeml.schemas import check_values
from forgeml.task_interface import Task

TASK_MODULES: dict[str, str] = {
    "classification": "forgeml.tasks.classification",
    "generative": "forgeml.tasks.generative",
    "lm": "forgeml.tasks.lm",
    "pretraining": "forgeml.tasks.pretraining",
    "recsys": "forgeml.tasks.recsys",
    "sentiment": "forgeml.tasks.sentiment",
}


def task_named(name: str, source: str = "params.yaml") -> Task:
    if name not in TASK_MODULES:
        raise ConfigError(f"{source}: unknown pipeline.task '{name}'. Known: "
                          f"{', '.join(sorted(TASK_MODULES))}.")
    return importlib.import_module(TASK_MODULES[name]).TASK


def task_of(cfg: DictConfig, source: str = "params.yaml") -> Task:
    return task_named(OmegaConf.select(cfg, "pipeline.task", default="classification"), source)


def validated(cfg: DictConfig, source: str) -> DictConfig:
    """`cfg` checked against the schema of the task it names."""
    task = task_of(cfg, source)
    config.validate(cfg, task.schema, lambda c: check_values(c, task.problems), source)
    return cfg


def load_params(path: str | Path = config.DEFAULT_PARAMS) -> DictConfig:
    """A composed params file, read and validated: what every stage and command runs on."""
    return validated(config.read_params(path), str(path))


def compose(overrides: list[str] | None = None, config_dir: Path | None = None) -> DictConfig:
    """conf/ composed with Hydra overrides (as `dvc exp run -S` does) and validated."""
    return validated(config.compose(overrides, config_dir), "composed config")
