"""A sweep's study: Optuna in an RDB storage (sqlite under .forgeml/sweeps/ by default), one
MLflow parent run whose id the study keeps, and workers that ask for trials under a lock so
that exactly `n_trials` finish. A worker that died (kill -9, lost machine) leaves a RUNNING
trial: the next start fails it (same host: its pid is gone; elsewhere: its heartbeat stopped)
and retries its values, which resume the same run from their checkpoint."""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import optuna
from filelock import FileLock
from optuna.trial import TrialState

from forgeml import tracking
from forgeml.errors import ConfigError, ForgeMLError, TrackingError
from forgeml.io import pid_alive
from forgeml.sweeps.spec import SweepSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S = 20  # a worker on another machine is taken for dead after GRACE_S without one
GRACE_S = 120
MAX_RETRY = 3
PARENT_ATTR = "mlflow_parent_run_id"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweep_root(project: Path, name: str) -> Path:
    return project / ".forgeml" / "sweeps" / name


def storage_url(spec: SweepSpec, project: Path) -> str:
    if spec.storage:
        return os.path.expandvars(str(spec.storage))
    root = sweep_root(project, spec.name)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'study.db'}"


def open_study(spec: SweepSpec, url: str) -> optuna.Study:
    """The study (created, or continued: `load_if_exists`), or one line saying why not."""
    try:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(MAX_RETRY),
            engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {})
        return optuna.create_study(study_name=spec.name, storage=storage,
                                   sampler=_sampler(spec), pruner=_pruner(spec),
                                   direction=spec.direction, load_if_exists=True)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy and drivers raise many kinds
        shown = tracking.display_uri(url)
        raise TrackingError(f"Cannot open the sweep's study storage {shown}: "
                            f"{str(err).splitlines()[0][:200]}. Check the URL, that the "
                            "database is up and the credentials in the environment.") from None


def _sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sampler.get("seed")
    name = spec.sampler["name"]
    if name == "grid":
        if any(p.kind != "categorical" for p in spec.space):
            raise ConfigError(f"conf/sweep/{spec.name}.yaml: the grid sampler needs every "
                              "space entry to be categorical (its grid values).")
        size = math.prod(len(p.choices) for p in spec.space)
        if spec.n_trials > size:
            raise ConfigError(f"conf/sweep/{spec.name}.yaml: n_trials {spec.n_trials} is more "
                              f"than the grid's {size} points (each would run twice).")
        return optuna.samplers.GridSampler({p.key: list(p.choices) for p in spec.space},
                                           seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner["name"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=int(spec.pruner.get("n_startup_trials", 5)),
        n_warmup_steps=int(spec.pruner.get("n_warmup_steps", 0)))


def parent_run(study: optuna.Study, uri: str, experiment: str, spec: SweepSpec,
               lock: FileLock) -> str:
    """The study's MLflow parent run: created by the first start, reopened by every later one
    (and by every worker), so all trials nest under one run in the UI."""
    with lock:
        run_id = study.user_attrs.get(PARENT_ATTR)
        if run_id and tracking.reopen_run(uri, run_id, "sweep restart"):
            return run_id
        run_id = tracking.start_run(
            uri, experiment, {**tracking.owner_tags(), "forgeml.sweep": spec.name},
            f"sweep-{spec.name}",
            f"Hyper-parameter sweep `{spec.name}` of experiment `{spec.experiment}`: "
            f"{spec.n_trials} trials, {spec.direction} {spec.metric}. Each child run is one "
            "trial.")
        study.set_user_attr(PARENT_ATTR, run_id)
        return run_id


def repair_dead_trials(study: optuna.Study) -> list[int]:
    """Fail (and retry) the RUNNING trials whose worker is gone: on this host by pid, on
    other hosts by Optuna's heartbeat."""
    host, failed = socket.gethostname(), []
    storage = study._storage  # the study's RDBStorage (no public accessor)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = int(trial.user_attrs.get("worker_pid", 0))
        if trial.user_attrs.get("worker_host") == host and pid and not pid_alive(pid):
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            optuna.storages.RetryFailedTrialCallback(MAX_RETRY)(
                study, storage.get_trial(trial._trial_id))
            failed.append(trial.number)
    failed += optuna.storages.fail_stale_trials(study) or []
    return failed


def counted(study: optuna.Study) -> int:
    """Trials that are done or being run by a live worker: what `n_trials` counts."""
    return len(study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)))


@contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            study._storage.record_heartbeat(trial._trial_id)

    study._storage.record_heartbeat(trial._trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def work(study: optuna.Study, spec: SweepSpec, lock: FileLock,
         run: Callable[[optuna.Trial], float], deadline: float | None) -> int:
    """Ask, run and tell trials until `n_trials` are counted (or the deadline passes); the
    count and the ask happen under the lock, so workers on one machine never overshoot."""
    ran = 0
    while True:
        with lock:
            repair_dead_trials(study)
            if counted(study) >= spec.n_trials or (deadline and time.time() > deadline):
                return ran
            trial = study.ask()
            trial.set_user_attr("worker_host", socket.gethostname())
            trial.set_user_attr("worker_pid", os.getpid())
        with _heartbeat(study, trial):
            try:
                value = run(trial)
            except optuna.TrialPruned:
                _tell(study, trial, state=TrialState.PRUNED)
            except ForgeMLError as err:
                trial.set_user_attr("error", str(err)[:500])
                _tell(study, trial, state=TrialState.FAIL)
                if isinstance(err, ConfigError | TrackingError):
                    raise  # the same for every trial: stop the sweep
            except BaseException:
                _tell(study, trial, state=TrialState.FAIL)
                raise
            else:
                _tell(study, trial, value)
        ran += 1


def _tell(study: optuna.Study, trial: optuna.Trial, value: float | None = None,
          state: TrialState | None = None) -> None:
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as err:
        # The grid sampler calls `study.stop()` once its grid is used up, which Optuna allows
        # only inside `optimize`; the trial's state is stored before that (the loop then ends).
        if "Study.stop" not in str(err):
            raise
