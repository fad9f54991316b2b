"""Optuna pruning inside Lightning (optuna-integration's callback needs the `lightning` package,
not `pytorch_lightning`): the objective is reported at every validation, and a trial that the
pruner gives up on stops training cleanly (its run and outputs complete, tagged PRUNED)."""

from __future__ import annotations

import optuna
from pytorch_lightning.callbacks import Callback


class PruneOnValidation(Callback):
    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned = False
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch + 1
        self.trial.report(float(trainer.callback_metrics[self.metric]), step=epoch)
        if self.trial.should_prune():
            self.pruned, self.pruned_at = True, epoch
            trainer.should_stop = True  # ends like early stopping: nothing half-written
