"""`forgeml sweep <name>`: check the sweep, open (or continue) its study and parent run, prepare
the data once, run the trials with K worker processes, and, once `n_trials` are done, write the
best experiment and the sweep report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from filelock import FileLock
from omegaconf import OmegaConf

from forgeml import tracking
from forgeml.artifacts import DATA_CARD
from forgeml.config import find_config_dir
from forgeml.errors import ForgeMLError
from forgeml.sweeps.spec import SweepSpec, base_values, load_spec
from forgeml.sweeps.study import (
    FINISHED,
    PARENT_ATTR,
    open_study,
    parent_run,
    storage_url,
    sweep_root,
    work,
)
from forgeml.sweeps.trial import run_trial, sweep_experiment
from forgeml.tasks import compose, task_of


def sweep(name: str, n_trials: int | None = None, workers: int = 1,
          worker_only: bool = False) -> dict:
    conf_dir = find_config_dir()
    project = conf_dir.parent
    spec = load_spec(name, conf_dir)
    if n_trials is not None:
        spec = replace(spec, n_trials=n_trials)
    base = compose(spec.base_overrides(), conf_dir)
    task = task_of(base)
    defaults = base_values(spec, base)
    compose(spec.trial_overrides(defaults), conf_dir)  # every searched key applies
    uri = tracking.tracking_uri(base)
    tracking.check_reachable(uri, base.logger.connect_timeout_s)
    study = open_study(spec, storage_url(spec, project))
    root = sweep_root(project, name)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / "ask.lock")
    # Helpers only read the parent's id: the run stays owned by the command that started them.
    parent = (study.user_attrs[PARENT_ATTR] if worker_only
              else parent_run(study, uri, sweep_experiment(base), spec, lock))
    if not worker_only:
        with lock:
            # Trial 0: the experiment as it is, the default to beat (a grid holds it already:
            # its values must be among the choices, and an enqueued copy would run twice).
            if not study.trials and spec.sampler["name"] != "grid":
                study.enqueue_trial(defaults)
            _prepare_once(task, base, root)
    _share_cores(workers)
    helpers = [] if worker_only else [_spawn_worker(name, spec.n_trials, workers)
                                      for _ in range(workers - 1)]
    deadline = time.time() + spec.timeout_s if spec.timeout_s else None
    try:
        work(study, spec, lock, lambda trial: run_trial(trial, spec, task, root, conf_dir,
                                                        parent), deadline)
    finally:
        failed = [p for p in helpers if p.wait() != 0]
    if worker_only:
        return {}
    if failed:
        raise ForgeMLError(f"{len(failed)} of {workers - 1} helper workers failed (see their "
                           "output above); rerun the same command to continue the study.")
    return _finish(spec, study, task, root, conf_dir, uri, parent, deadline, defaults)


def _finish(spec: SweepSpec, study, task, root: Path, conf_dir: Path, uri: str, parent: str,
            deadline: float | None, defaults: dict) -> dict:
    from forgeml.sweeps.results import report, write_best

    finished = study.get_trials(deepcopy=False, states=FINISHED)
    if len(finished) < spec.n_trials and not (deadline and time.time() > deadline):
        raise ForgeMLError(f"Only {len(finished)} of {spec.n_trials} trials finished (others "
                           "failed: see the study); rerun the same command to continue.")
    if not study.get_trials(deepcopy=False, states=FINISHED[:1]):
        raise ForgeMLError("No trial ran to the end (all pruned or failed): widen the space or "
                           "loosen the pruner.")
    best_file = write_best(spec, study, conf_dir)
    path = report(spec, study, task, root, conf_dir, uri, parent, best_file, defaults)
    tracking.end_run(uri, parent, "FINISHED")
    best = study.best_trial
    return {"best_trial": best.number, "best_value": best.value, "best_file": best_file,
            "report": path, "finished": len(finished), "metric": spec.metric}


def _prepare_once(task, base, root: Path) -> None:
    """The task's prepare stage into the sweep's folder: every trial trains on the same data."""
    prepared = root / "prepared"
    if not (prepared / DATA_CARD).is_file():
        task.stage("prepare").run(OmegaConf.merge(base, {"paths": {"prepared": str(prepared)}}))


def _share_cores(workers: int) -> None:
    import torch

    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for the helpers started below
    torch.set_num_threads(threads)


def _spawn_worker(name: str, n_trials: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forgeml.entry", "sweep", name, "--n-trials",
                             str(n_trials), "--workers", str(workers), "--worker"])


def summarize(result: dict) -> str:
    return (f"sweep done: {result['finished']} trials; best #{result['best_trial']} "
            f"{result['metric']} {result['best_value']:.4f}; best experiment "
            f"{result['best_file']}; report {Path(result['report']).resolve()}")
