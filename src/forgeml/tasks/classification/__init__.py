"""Image classification: digits, MNIST, Fashion-MNIST with MLP/CNN."""

from __future__ import annotations

from forgeml.task_interface import Retraining, Serving, Stage, Task
from forgeml.tasks.classification.schema import ClassificationSchema, classification_problems


def _prepare() -> Stage:
    from forgeml.tasks.classification import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _train() -> Stage:
    from forgeml.tasks.classification import train as stage

    return Stage(stage.train, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.classification import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _cv() -> Stage:
    from forgeml.tasks.classification import cv as stage

    return Stage(stage.cv, stage.summarize)


def _compress() -> Stage:
    from forgeml.tasks.classification import compress as stage

    return Stage(stage.compress, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.classification.report import SECTIONS

    return stage(SECTIONS)


def _retraining() -> Retraining:
    from forgeml.tasks.classification import retraining

    return Retraining(metric=lambda cfg: "acc", per_example=retraining.per_example,
                      drift_counts=retraining.drift_counts)


def _serving() -> Serving:
    from forgeml.tasks.classification import endpoint, export

    return Serving(exportable=export.exportable, test_inputs=export.test_inputs,
                   endpoint=endpoint.ImageEndpoint)


TASK = Task(
    name="classification", schema=ClassificationSchema, problems=classification_problems,
    stages={"prepare": _prepare, "train": _train, "evaluate": _evaluate,
            "cv": _cv, "compress": _compress, "report": _report},
    retraining=_retraining,
    serving=_serving,
    utility=lambda cfg: ("acc", "Test accuracy"),
)
