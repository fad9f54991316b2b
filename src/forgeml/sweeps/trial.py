"""One trial of a sweep: its sampled values, its composed config (outputs in the sweep's folder,
a child MLflow run of the study's parent), trained by the task's own train stage with a pruning
callback; the objective is the best validation value of its history."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from forgeml import tracking
from forgeml.errors import ConfigError
from forgeml.sweeps.spec import SweepSpec
from forgeml.tasks import compose


def sample(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    values = {}
    for p in spec.space:
        if p.kind == "float":
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log)
        elif p.kind == "int":
            values[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), log=p.log)
        else:
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
    return values


def sweep_experiment(cfg: DictConfig) -> str:
    return f"{cfg.pipeline.name}-sweeps"


def trial_folder(root: Path, values: dict[str, Any]) -> Path:
    """Named by the values, not the trial number: a trial retried after its worker died has
    the same values, so it finds the same folder and resumes the same run from its checkpoint."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    return root / f"trial-{digest.hexdigest()[:12]}"


def trial_config(spec: SweepSpec, values: dict[str, Any], root: Path, conf_dir: Path
                 ) -> DictConfig:
    """The experiment with the trial's values, writing under the sweep's folder (all trials
    share one prepared data set) and logging to `<pipeline>-sweeps` without a model."""
    cfg = compose(spec.trial_overrides(values), conf_dir)
    folder = trial_folder(root, values)
    return OmegaConf.merge(cfg, {
        "paths": {"prepared": str(root / "prepared"), "models": str(folder / "models"),
                  "metrics": str(folder / "metrics"), "plots": str(folder / "plots"),
                  "eval": str(folder / "eval"), "reports": str(folder / "reports")},
        "logger": {"experiment_name": sweep_experiment(cfg), "log_model": False},
        "trainer": {"enable_progress_bar": False},
    })


def objective_value(spec: SweepSpec, record: dict) -> float:
    """The best value of the objective over the trial's epochs."""
    column = [row[spec.history_key] for row in record.get("history", [])
              if spec.history_key in row and math.isfinite(row[spec.history_key])]
    if not column:
        known = sorted({k for row in record.get("history", []) for k in row})
        raise ConfigError(f"objective.metric '{spec.metric}' is not in this task's validation "
                          f"history (its columns: {', '.join(known)}; e.g. val/loss).")
    return max(column) if spec.direction == "maximize" else min(column)


def run_trial(trial: optuna.Trial, spec: SweepSpec, task, root: Path, conf_dir: Path,
              parent_run_id: str) -> float:
    from forgeml.sweeps.pruning import PruneOnValidation

    values = sample(trial, spec)
    cfg = trial_config(spec, values, root, conf_dir)
    pruning = PruneOnValidation(trial, spec.metric)
    record = task.stage("train").run(
        cfg, child_of=tracking.ChildOf(parent_run_id, {"forgeml.trial": str(trial.number)}),
        callbacks=[pruning])
    trial.set_user_attr("mlflow_run_id", record["run_id"])
    trial.set_user_attr("folder", str(trial_folder(root, values)))
    if pruning.pruned:
        tracking.client(tracking.tracking_uri(cfg)).set_tag(
            record["run_id"], "forgeml.trial_state", "PRUNED")
        raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}")
    return objective_value(spec, record)
