"""What a task is: the stages it runs, the config it accepts, and the hooks the shared machinery
calls (retraining's scorer; the report's sections live in the task's report stage). Each task
package defines one `TASK`; `forgeml.tasks` is the registry that the CLI, config
validation and retraining look tasks up in, so nothing outside a task branches on its name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgeml.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from omegaconf import DictConfig


@dataclass(frozen=True)
class Stage:
    """A stage's function (composed config -> result; None on a DDP worker rank) and the one
    line the CLI prints for its result. A train stage also takes `child_of` and `callbacks`
    (keywords) when it runs inside a larger run: a sweep's trial, a cross-validation fold."""

    run: Callable[..., Any]
    summarize: Callable[[DictConfig, Any], str]


@dataclass(frozen=True)
class Retraining:
    """How `forgeml retrain` judges this task's models on today's frozen test set."""

    # The per-example metric, as named in conf/retrain/<pipeline>.yaml (e.g. "acc").
    metric: Callable[[DictConfig], str]
    # (cfg, tracking URI, run id) -> one value per test example (1/0: correct, hit in top K).
    per_example: Callable[[DictConfig, str, str], np.ndarray]
    # A data card -> (what is compared, the counts whose PSI measures drift, or None).
    drift_counts: Callable[[dict], tuple[str, list | None]]


@dataclass(frozen=True)
class Serving:
    """How `forgeml export`, `serve` and `predict --input` handle this task's logged models: the
    PyTorch side (the network to export, real test inputs to check it on) and the ONNX Runtime
    side (requests in, answers out; no torch)."""

    # (tracking URI, run id) -> forgeml.serving.export.Exportable
    exportable: Callable[[str, str], Any]
    # (composed config, how many) -> real test inputs, keyed by the exported input names
    test_inputs: Callable[[DictConfig, int], dict[str, np.ndarray]]
    # (forgeml.serving.bundle.Bundle, threads) -> the endpoint answering requests and rows
    endpoint: Callable[[Any, int], Any]


@dataclass(frozen=True)
class Task:
    name: str
    schema: type  # the structured config (dataclass) that params.yaml must fit
    problems: Callable[[DictConfig], list[str]]  # value checks beyond types
    # Stage name -> a function that imports the stage's module (only the stage that runs is
    # imported: training pulls in Lightning, evaluate and report do not).
    stages: Mapping[str, Callable[[], Stage]] = field(default_factory=dict)
    retraining: Callable[[], Retraining] | None = None  # imported only by `forgeml retrain`
    serving: Callable[[], Serving] | None = None  # imported only by export, serve, predict
    # The test metric a product is judged by, as logged under test/ with _ci_low/_ci_high
    # beside it, and its plain name (e.g. ("acc", "Test accuracy")): the privacy/utility
    # table's column. None: the task has no privacy=dp.
    utility: Callable[[DictConfig], tuple[str, str]] | None = None

    def stage(self, name: str) -> Stage:
        if name not in self.stages:
            raise ConfigError(f"The {self.name} pipeline has no '{name}' stage (it has "
                              f"{', '.join(self.stages)}).")
        return self.stages[name]()

    def retraining_hooks(self, pipeline: str) -> Retraining:
        if self.retraining is None:
            raise ConfigError(f"Retraining is not supported for {self.name} pipelines "
                              f"('{pipeline}'): the task defines no per-example scorer.")
        return self.retraining()

    def utility_metric(self, cfg: DictConfig) -> tuple[str, str]:
        if self.utility is None:
            raise ConfigError(f"pipeline '{cfg.pipeline.name}' has no privacy option (privacy=dp "
                              "trains the image classification and recommender pipelines).")
        return self.utility(cfg)

    def serving_hooks(self, pipeline: str) -> Serving:
        if self.serving is None:
            raise ConfigError(f"Export and serving are not supported for {self.name} pipelines "
                              f"('{pipeline}'): the task defines no exported model.")
        return self.serving()
