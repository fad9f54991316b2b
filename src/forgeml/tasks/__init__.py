"""Each task (classification, lm, ...) implements the four stages as modules
`forgeml.tasks.<task>.<stage>` with a function named after the stage and a `summarize(cfg,
result)` for the one line the CLI prints. `pipeline.task` in the composed config picks one."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from omegaconf import DictConfig

from forgeml.errors import ConfigError

TASKS = ("classification", "lm", "recsys", "sentiment")
STAGES = ("prepare", "train", "evaluate", "report")


def stage_module(cfg: DictConfig, stage: str) -> ModuleType:
    task = cfg.pipeline.task
    if task not in TASKS:
        raise ConfigError(f"Unknown pipeline.task '{task}'. Known: {', '.join(TASKS)}.")
    if importlib.util.find_spec(f"forgeml.tasks.{task}.{stage}") is None:
        raise ConfigError(f"The {task} pipeline has no '{stage}' stage.")
    return importlib.import_module(f"forgeml.tasks.{task}.{stage}")
