"""Self-supervised pre-training: a masked autoencoder on unlabelled images, then fine-tuning with
few labels against the same network from scratch (how many labels does pre-training save?)."""

from __future__ import annotations

from forgeml.task_interface import Stage, Task
from forgeml.tasks.pretraining.schema import PretrainingSchema, pretraining_problems


def _prepare() -> Stage:
    from forgeml.tasks.pretraining import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _pretrain() -> Stage:
    from forgeml.tasks.pretraining import pretrain as stage

    return Stage(stage.pretrain, stage.summarize)


def _finetune() -> Stage:
    from forgeml.tasks.pretraining import finetune as stage

    return Stage(stage.finetune, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.pretraining import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.pretraining.report import SECTIONS

    return stage(SECTIONS)


TASK = Task(
    name="pretraining", schema=PretrainingSchema, problems=pretraining_problems,
    stages={"prepare": _prepare, "pretrain": _pretrain, "finetune": _finetune,
            "evaluate": _evaluate, "report": _report},
)
