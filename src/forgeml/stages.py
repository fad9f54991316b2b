"""The one list of pipeline stages: the `forgeml <stage>` commands that dvc.yaml calls. The CLI's
stage commands, the warm server, the stage pre-flight and the tests of every dvc.yaml and task
derive from it; a task runs a subset of them.

Standard library only: the warm client reads it before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    name: str
    help: str  # the CLI command's help line
    outputs: tuple[str, ...]  # the paths.* entries it writes (checked writable before work)
    # Opens the MLflow store: its start marks the pipeline's runs left RUNNING by a dead
    # process KILLED (prepare never imports MLflow).
    tracked: bool = True


STAGES: dict[str, StageSpec] = {spec.name: spec for spec in (
    StageSpec("prepare", "Load, validate, clean and split the data; write it and a data card.",
              ("prepared",), tracked=False),
    StageSpec("features", "Train the frozen classifier whose features score generated images "
              "(gan).", ("features", "metrics")),
    StageSpec("pretrain", "Pre-train the encoder as a masked autoencoder on unlabelled images "
              "(ssl).", ("models", "metrics", "plots")),
    StageSpec("train", "Train the configured model with Lightning; log the MLflow run and the "
              "model.", ("models", "metrics", "plots")),
    StageSpec("finetune", "Fine-tune each model on each labelled subset (ssl).",
              ("models", "metrics")),
    StageSpec("baselines", "Train the comparison models listed under `baselines` (sentiment) "
              "on the same split.", ("baselines",)),
    StageSpec("cv", "k-fold cross-validation over train + val (cv.folds; 0: off): one MLflow "
              "run per fold.", ("metrics",)),
    StageSpec("evaluate", "Test-split metrics with intervals and baselines; logged into the "
              "training run.", ("eval", "metrics", "plots")),
    StageSpec("compress", "Compare PyTorch fp32, ONNX fp32/int8, a pruned and a distilled "
              "model on the test split.", ("metrics", "plots")),
    StageSpec("report", "Write the HTML + Markdown report and print the headline.",
              ("reports",)),
)}
