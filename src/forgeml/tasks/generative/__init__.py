"""Image generation: a class-conditional DCGAN judged in the feature space of a frozen classifier
(FID, KID, conditional accuracy, diversity, memorisation)."""

from __future__ import annotations

from forgeml.task_interface import Stage, Task
from forgeml.tasks.generative.schema import GenerativeSchema, generative_problems


def _prepare() -> Stage:
    from forgeml.tasks.generative import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _features() -> Stage:
    from forgeml.tasks.generative import features as stage

    return Stage(stage.features, stage.summarize)


def _train() -> Stage:
    from forgeml.tasks.generative import train as stage

    return Stage(stage.train, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.generative import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.generative.report import SECTIONS

    return stage(SECTIONS)


TASK = Task(
    name="generative", schema=GenerativeSchema, problems=generative_problems,
    stages={"prepare": _prepare, "features": _features, "train": _train,
            "evaluate": _evaluate, "report": _report},
)
