"""Recommendation from implicit feedback: GMF / MLP / NeuMF on user-item interactions."""

from __future__ import annotations

from forgeml.task_interface import Retraining, Serving, Stage, Task
from forgeml.tasks.recsys.schema import RecsysSchema, recsys_problems


def _prepare() -> Stage:
    from forgeml.tasks.recsys import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _train() -> Stage:
    from forgeml.tasks.recsys import train as stage

    return Stage(stage.train, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.recsys import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.recsys.report import SECTIONS

    return stage(SECTIONS)


def _retraining() -> Retraining:
    from forgeml.tasks.recsys import retraining

    return Retraining(metric=lambda cfg: f"hr_at_{cfg.evaluate.k}",
                      per_example=retraining.per_example,
                      drift_counts=retraining.drift_counts)


def _serving() -> Serving:
    from forgeml.tasks.recsys import endpoint, export

    return Serving(exportable=export.exportable, test_inputs=export.test_inputs,
                   endpoint=endpoint.RecommenderEndpoint)


TASK = Task(
    name="recsys", schema=RecsysSchema, problems=recsys_problems,
    stages={"prepare": _prepare, "train": _train, "evaluate": _evaluate, "report": _report},
    retraining=_retraining,
    serving=_serving,
    utility=lambda cfg: (f"hr_at_{cfg.evaluate.k}", f"Test HR@{cfg.evaluate.k}"),
)
