"""Sentiment: a fine-tuned pretrained transformer (MiniLM) against cheaper baselines, on review
snippets."""

from __future__ import annotations

from forgeml.task_interface import Serving, Stage, Task
from forgeml.tasks.sentiment.schema import SentimentSchema, sentiment_problems


def _prepare() -> Stage:
    from forgeml.tasks.sentiment import prepare as stage

    return Stage(stage.prepare, stage.summarize)


def _train() -> Stage:
    from forgeml.tasks.sentiment import train as stage

    return Stage(stage.train, stage.summarize)


def _baselines() -> Stage:
    from forgeml.tasks.sentiment import baselines as stage

    return Stage(stage.baselines, stage.summarize)


def _evaluate() -> Stage:
    from forgeml.tasks.sentiment import evaluate as stage

    return Stage(stage.evaluate, stage.summarize)


def _cv() -> Stage:
    from forgeml.tasks.sentiment import cv as stage

    return Stage(stage.cv, stage.summarize)


def _compress() -> Stage:
    from forgeml.tasks.sentiment import compress as stage

    return Stage(stage.compress, stage.summarize)


def _report() -> Stage:
    from forgeml.reporting.skeleton import stage
    from forgeml.tasks.sentiment.report import SECTIONS

    return stage(SECTIONS)


def _serving() -> Serving:
    from forgeml.tasks.sentiment import endpoint, export

    return Serving(exportable=export.exportable, test_inputs=export.test_inputs,
                   endpoint=endpoint.TextEndpoint)


TASK = Task(
    name="sentiment", schema=SentimentSchema, problems=sentiment_problems,
    stages={"prepare": _prepare, "train": _train, "baselines": _baselines,
            "evaluate": _evaluate, "cv": _cv, "compress": _compress, "report": _report},
    serving=_serving,
)
