"""Language modelling: a GPT trained on tokenised text (Shakespeare by default)."""

from __future__ import annotations

from forgeml.task_interface import Stage, Task
from forgeml.tasks.lm.schema import LMSchema, lm_problems


def _prepare() -> Stage:
    from forgeml.tasks.lm import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _train() -> Stage:
    from forgeml.tasks.lm import train as stage

    return Stage(stage.train, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.lm import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.lm.report import SECTIONS

    return stage(SECTIONS)


TASK = Task(
    name="lm", schema=LMSchema, problems=lm_problems,
    stages={"prepare": _prepare, "train": _train, "evaluate": _evaluate, "report": _report},
)
