"""MLflow: where runs go, lineage tags, logging into a pipeline's run, models, history."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from forgeml.config import config_hash, find_config_dir
from forgeml.credentials import (
    MASK,
    basic_auth_header,
    clean_environment,
    client_uri,
    is_secret_key,
    mask_uri,
    redact,
)
from forgeml.errors import TrackingError
from forgeml.io import pid_alive

# MLflow caps one log_batch call at 1000 metrics / 100 params.
_PARAM_CHUNK = 100


def project_root() -> Path:
    """The folder holding conf/; for DVC's queued experiments (run in .dvc/tmp/exps/<tmp>),
    the real repository, so that every experiment lands in one tracking store."""
    root = find_config_dir().parent
    marker = f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}"
    text = str(root)
    return Path(text.split(marker)[0]) if marker in text else root


def tracking_uri(cfg: DictConfig) -> str:
    """$MLFLOW_TRACKING_URI, else this config's logger.tracking_uri, else
    sqlite:///<project root>/mlflow.db (credentials moved to the client's variables, see
    forgeml.credentials). Only `cfg` is read: a sub-pipeline's stage never takes the root
    params.yaml's store."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return default_tracking_uri()
    if cfg.logger.tracking_uri:
        return client_uri(str(cfg.logger.tracking_uri))
    return local_store()


def local_store() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def default_tracking_uri(given: str | None = None) -> str:
    """`given` (a --tracking-uri), else $MLFLOW_TRACKING_URI, else the project's configured
    server (`logger.tracking_uri` in its params.yaml, e.g. `logger=server`), else the project's
    sqlite store."""
    clean_environment()
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or _configured_uri()
    return client_uri(uri) if uri else local_store()


def _configured_uri() -> str | None:
    """The root params.yaml's logger.tracking_uri: commands outside the pipeline (retrain,
    predict, reproduce, sweeps) use the server its stages log to."""
    import yaml

    try:
        params = yaml.safe_load((project_root() / "params.yaml").read_text())
        return (params.get("logger") or {}).get("tracking_uri") or None
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def check_reachable(uri: str, timeout_s: float) -> None:
    """Fail fast, with the fix, when a remote tracking server does not answer or refuses
    ForgeML's credentials (/health answers without them, so an API call checks them); a
    database store (PostgreSQL, MySQL) is tried once, instead of MLflow's ~100 s of retries."""
    if uri.split(":", 1)[0].split("+")[0] in _DATABASE_SCHEMES:
        _check_database(uri, timeout_s)
        return
    if not uri.startswith(("http://", "https://")):
        return
    base = uri.rstrip("/")
    for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
        request = urllib.request.Request(base + path, headers=basic_auth_header())
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                given = "refused the credentials" if basic_auth_header() else \
                    "requires credentials"
                raise TrackingError(
                    f"MLflow tracking server {display_uri(uri)} {given} (HTTP {err.code}). Set "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or put them in "
                    "$MLFLOW_TRACKING_URI, which ForgeML never stores).") from None
            _unreachable(uri, f"HTTP {err.code}")
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            _unreachable(uri, str(getattr(err, "reason", err)))


_DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mssql")


def _check_database(uri: str, timeout_s: float) -> None:
    import sqlalchemy

    scheme = uri.split(":", 1)[0]
    connect_args = {"connect_timeout": max(1, int(timeout_s))} if "postgres" in scheme or \
        "mysql" in scheme else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError:
        raise  # a missing driver: forgeml.faults names the package to install
    except Exception as err:  # noqa: BLE001 - each driver raises its own kinds
        reason = str(getattr(err, "orig", err) or err).strip().splitlines()
        reason = reason[0].strip() if reason else type(err).__name__
        lowered = reason.lower()
        if "password" in lowered or "authentication" in lowered or "access denied" in lowered:
            hint = ("it refused the credentials, so give the database password through the "
                    "driver's variable (PGPASSWORD for PostgreSQL) or $MLFLOW_TRACKING_URI, "
                    "which ForgeML never stores")
        elif "does not exist" in lowered or "unknown database" in lowered:
            hint = "create the database (e.g. `createdb mlflow`), or fix the URI"
        else:
            hint = ("it does not answer: start the database (e.g. `pg_ctlcluster 15 main "
                    "start`), or fix the host and port in the URI")
        raise TrackingError(f"The MLflow tracking database {display_uri(uri)} cannot be used "
                            f"({reason[:200]}): {hint}; nothing was written.") from None


def _unreachable(uri: str, problem: str) -> None:
    raise TrackingError(
        f"MLflow tracking server {display_uri(uri)} is unreachable ({problem}). Start it (e.g. "
        "`mlflow server "
        "--backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000`), fix "
        "logger.tracking_uri / $MLFLOW_TRACKING_URI, or unset both to use the local sqlite store."
    )


def git_info(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout

    commit = git("rev-parse", "HEAD").strip()
    if not commit:
        return {"commit": "none", "dirty": "unknown"}
    # Not stripped: each porcelain line is "XY path", and X is a space for an unstaged change.
    changed = [line[3:] for line in git("status", "--porcelain",
                                        "--untracked-files=no").splitlines() if line.strip()]
    dirty = [path for path in changed if not _written_by_dvc(path)]
    return {"commit": commit, "dirty": str(bool(dirty)).lower()}


def _written_by_dvc(path: str) -> bool:
    """Files a `dvc repro` / `dvc exp run` itself rewrites: lock files, params files (`-S`
    values are recorded as params and in the config hash) and git-tracked metrics and plots.
    Changes to them are not "uncommitted changes" of the code that ran."""
    name = path.rsplit("/", 1)[-1]
    return name in ("dvc.lock", "params.yaml") or path.startswith(("metrics/", "plots/"))


def lineage_tags(cfg: DictConfig, data_card: dict) -> dict[str, str]:
    git = git_info(project_root())
    tags = {
        "mlflow.source.git.commit": git["commit"],
        "forgeml.git_commit": git["commit"],
        "forgeml.git_dirty": git["dirty"],
        "forgeml.pipeline": cfg.pipeline.name,
        "forgeml.data_hash": data_card.get("data_hash", "unknown"),
        "forgeml.data_source": data_card.get("source", "unknown"),
        "forgeml.config_hash": config_hash(cfg),
        "forgeml.model": str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1],
        "forgeml.environment": environment(),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    return tags


def environment() -> str:
    """The interpreter and the libraries a run's numbers depend on, as one line."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {platform.python_version()}"]
    for package in ("torch", "pytorch-lightning", "numpy", "scikit-learn", "mlflow"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{package} {version(package)}")
    # The CPU kernels torch picked (AVX2, AVX512, …): float results, and so the learning
    # curves of the same seed, differ between kernel sets.
    with contextlib.suppress(Exception):
        import torch

        parts.append(f"cpu {platform.machine()} {torch.backends.cpu.get_cpu_capability()}")
    return "; ".join(parts)


_last_uri: list[str] = []  # the store in use, for error messages


def last_uri() -> str:
    return _last_uri[-1] if _last_uri else default_tracking_uri()


def display_uri(uri: str) -> str:
    """`uri` with any password masked (URIs are shown in messages, reports and logs)."""
    return mask_uri(uri)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    _last_uri.append(uri)
    del _last_uri[:-1]
    return MlflowClient(tracking_uri=uri)


def pipeline_description(cfg: DictConfig) -> str:
    """What an experiment of pipeline runs holds, shown on its page in MLflow's UI."""
    dvc_file = OmegaConf.select(cfg, "pipeline.dvc_file", default="dvc.yaml")
    return (f"Training runs of the ForgeML pipeline '{cfg.pipeline.name}' (task "
            f"{cfg.pipeline.task}), one per `dvc repro {dvc_file}` or `dvc exp run` that "
            "trains, each with its data set, parameters, per-epoch metrics, evaluation, "
            "report and model; a run's description is its report's verdict. Scheduled "
            f"retraining decisions are in '{cfg.pipeline.name}-retrain'.")


# Pipeline runs, not their children (compressed variants, baselines), in a search filter.
TOP_LEVEL = "tags.`mlflow.parentRunId` IS NULL"

# MLflow's UI opens an experiment of this kind on its training runs (not on GenAI traces).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(uri: str, experiment_name: str, description: str) -> str:
    """The experiment's id, created on first use; every experiment ForgeML writes to carries
    the kind tag and a description (`mlflow.note.content`) saying what produces its runs."""
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    tags = {**EXPERIMENT_KIND, "mlflow.note.content": description}
    if experiment is None:
        return mlflow_client.create_experiment(experiment_name, tags=tags)
    for key, value in tags.items():  # experiments made before these tags existed
        if key not in experiment.tags:
            mlflow_client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


@dataclass(frozen=True)
class ChildOf:
    """Where a run nests in MLflow's UI when it is part of a larger one (a sweep's trial, a
    fold, a fine-tuning child): the parent run, the child's extra tags, and the name it shows
    in the runs table (None: the name it would have had)."""

    parent_run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None


def start_run(uri: str, experiment_name: str, tags: dict[str, str], run_name: str,
              description: str, child_of: ChildOf | None = None) -> str:
    """A new run (the experiment is created on first use), a child of `child_of`'s parent
    where given; returns its id."""
    if child_of is not None:
        tags = {**tags, "mlflow.parentRunId": child_of.parent_run_id, **child_of.tags}
        run_name = child_of.run_name or run_name
    return client(uri).create_run(experiment_id(uri, experiment_name, description), tags=tags,
                                  run_name=run_name).info.run_id


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str | None, interval_s: float | None) -> Iterator[None]:
    """MLflow's CPU / memory / disk / network (and GPU, where there is one) sampler on the run
    while the block runs, every `interval_s` seconds (off for 0 or None); it continues the
    step count of a resumed run."""
    if not interval_s or run_id is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s, resume_logging=True,
                                   tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        # The samples since the last write (all of them, for a run shorter than the interval).
        if last := monitor.aggregate_metrics():
            monitor.publish_metrics(last)
            monitor.mlflow_logger.flush()


def log_child_run(uri: str, parent_run_id: str, key: str, name: str,
                  metrics: dict[str, float], tags: dict[str, str] | None = None) -> str:
    """A finished child of `parent_run_id` (its experiment; MLflow's UI nests it under the
    parent and compares it with it) holding `metrics`. `key` names the child among its
    siblings: logging the same key again (a stage rerun after a crash) updates that child
    instead of adding a second one."""
    mlflow_client = client(uri)
    parent = mlflow_client.get_run(parent_run_id)
    found = mlflow_client.search_runs(
        [parent.info.experiment_id], max_results=1,
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
                      f"tags.`forgeml.child` = '{key}'")
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = mlflow_client.create_run(
            parent.info.experiment_id, run_name=name,
            tags={"mlflow.parentRunId": parent_run_id, "forgeml.child": key,
                  **{k: v for k, v in parent.data.tags.items()
                     if k.startswith("forgeml.") and k not in ("forgeml.pid", "forgeml.host")},
                  **(tags or {})}).info.run_id
    log_metrics(uri, run_id, {k: v for k, v in metrics.items() if v is not None})
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id


def ui_page(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """The experiment's (or run's) page in MLflow's UI, in its model-training view: MLflow 3
    opens every experiment in its GenAI view unless the link or the user's toggle says so."""
    path = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{base.rstrip('/')}/{path}?workflowType=machine_learning"


def describe_run(uri: str, run_id: str, text: str) -> None:
    """The run's description in MLflow's UI (its Overview and the runs table)."""
    client(uri).set_tag(run_id, "mlflow.note.content", redact(text)[:5000])


SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_datasets(uri: str, run_id: str, name: str, card: dict, schema: str | None) -> None:
    """The prepared data as MLflow dataset inputs (the runs table's Dataset column; runs filter
    by it): one per split, named after the data, digest = the data hash, with the split's rows."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    digest = str(card.get("data_hash", "unknown")).removeprefix("sha256:")[:16]
    source = json.dumps({"source": card.get("source", "unknown"),
                         "origin": card.get("origin", card.get("source", "unknown"))})
    inputs = []
    for split, context in SPLIT_CONTEXTS.items():
        count = card.get("counts", {}).get(split)
        if count is None:
            continue
        rows = sum(count.values()) if isinstance(count, dict) else int(count)
        profile = json.dumps({"split": split, "num_rows": rows})
        inputs.append(DatasetInput(
            Dataset(name=f"{name}-{split}", digest=digest, source_type="local", source=source,
                    schema=schema, profile=profile),
            tags=[InputTag("mlflow.data.context", context)]))
    if inputs:
        client(uri).log_inputs(run_id, datasets=inputs)


def owner_tags() -> dict[str, str]:
    """Which process holds a RUNNING run, so that the next start can tell a dead one."""
    return {"forgeml.host": socket.gethostname(), "forgeml.pid": str(os.getpid())}


def mark_dead_runs(uri: str, experiment_name: str) -> list[str]:
    """Runs of this experiment left RUNNING by a process of this host that no longer exists
    (killed, out of memory, machine restarted) become KILLED, with a tag saying why."""
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    host, dead = socket.gethostname(), []
    for run in mlflow_client.search_runs([experiment.experiment_id],
                                         filter_string="attributes.status = 'RUNNING'",
                                         max_results=500):
        tags = run.data.tags
        pid = int(tags.get("forgeml.pid", "0") or 0)
        if tags.get("forgeml.host") != host or not pid or pid_alive(pid):
            continue
        mlflow_client.set_tag(run.info.run_id, "forgeml.killed_reason",
                              f"process {pid} on {host} stopped while this run was RUNNING; "
                              "marked KILLED by the next start")
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
        dead.append(run.info.run_id)
    return dead


def repair_dead_runs(uri: str, experiment_name: str, timeout_s: float) -> list[str]:
    """`mark_dead_runs` for a command that starts (a stage, a retrain, a rollback): nothing to
    do when the local store does not exist yet; a store that cannot be reached is left to the
    command's own check, which says so in its one line."""

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return []
    try:
        check_reachable(uri, timeout_s)
    except TrackingError:
        return []
    return mark_dead_runs(uri, experiment_name)


def reopen_run(uri: str, run_id: str, resumed_from: str) -> bool:
    """Continue `run_id` (RUNNING again, owned by this process); False if it is gone."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        return False
    if run.info.lifecycle_stage != "active":
        return False
    count = int(run.data.tags.get("forgeml.resume_count", "0")) + 1
    mlflow_client.update_run(run_id, status="RUNNING")
    for key, value in {**owner_tags(), "forgeml.resume_count": str(count),
                       "forgeml.resumed_from": resumed_from}.items():
        mlflow_client.set_tag(run_id, key, value)
    return True


def end_run(uri: str, run_id: str, status: str) -> None:
    client(uri).set_terminated(run_id, status)


def shown_value(key: str, value: Any) -> str:
    """What may be stored for a param or tag: secret-named keys masked, URI passwords masked."""
    return MASK if is_secret_key(key) else redact(str(value))


def param_value(value: Any) -> Any:
    """Lists as short comma-separated strings that compare well side by side in MLflow's UI;
    a long one (e.g. 100 class names) by its length, the whole list being in the config
    artifact."""
    if not isinstance(value, list | tuple):
        return value
    text = ", ".join(map(str, value))
    return text if len(text) <= 120 else f"{len(value)} items (see config/config.yaml)"


def log_params(uri: str, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, shown_value(k, param_value(v))[:6000]) for k, v in sorted(params.items())]
    mlflow_client = client(uri)
    for start in range(0, len(items), _PARAM_CHUNK):
        mlflow_client.log_batch(run_id, params=items[start:start + _PARAM_CHUNK])


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """One batched write for all metrics (per-call logging is ~20x slower on sqlite)."""
    import time

    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in sorted(metrics.items())]
    try:
        client(uri).log_batch(run_id, metrics=items)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise TrackingError(
            f"MLflow run {run_id} is not in the tracking store {display_uri(uri)}: it was logged "
            "to another store ($MLFLOW_TRACKING_URI or logger.tracking_uri changed) or deleted. "
            "Rerun the stage that made it (`dvc repro -f -s <stage>`).") from None


def run_exists(uri: str, run_id: str) -> bool:
    """Whether `run_id` is an active run of this store (a kept result may name a run of a store
    the project no longer logs to, or one deleted in the UI)."""
    from mlflow.exceptions import MlflowException

    try:
        return client(uri).get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    client(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in sorted(tags.items())])


def log_dict(uri: str, run_id: str, data: dict, artifact_file: str) -> None:
    client(uri).log_dict(run_id, data, artifact_file)


def log_artifacts(uri: str, run_id: str, paths: list[Path], artifact_path: str) -> None:
    mlflow_client = client(uri)
    for path in paths:
        if Path(path).is_dir():
            mlflow_client.log_artifacts(run_id, str(path), artifact_path)
        else:
            mlflow_client.log_artifact(run_id, str(path), artifact_path)


@contextlib.contextmanager
def run_context(uri: str, run_id: str) -> Iterator[None]:
    """MLflow's fluent API inside an existing run, leaving the run's status as it was: the
    fluent `start_run` block would mark it FINISHED on exit, before the stage has committed."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    status = client(uri).get_run(run_id).info.status
    with mlflow.start_run(run_id=run_id):
        yield
    client(uri).update_run(run_id, status=status)


def log_model(uri: str, run_id: str, entry: Path, artifacts: dict[str, Path], signature,
              input_example, model_config: dict | None = None,
              requirements: tuple[str, ...] = ()) -> str:
    """Log the run's MLflow model as "models from code": the pyfunc built by the `entry` file
    over `artifacts` (ForgeML model files), so loading it never unpickles anything."""
    import mlflow
    import mlflow.pyfunc
    import torch

    with run_context(uri, run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(entry),
            artifacts={key: str(path) for key, path in artifacts.items()},
            model_config=model_config, signature=signature, input_example=input_example,
            # Explicit requirements: inferring them costs ~10 s per run.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                              f"mlflow=={mlflow.__version__}", "safetensors", *requirements],
        )
    return info.model_uri


def download(uri: str, run_id: str, artifact_path: str) -> Path:
    """A run's artifact from the store at `uri`. MLflow resolves a logged model's files (e.g.
    `model/...`) through the process-wide store, so that is pointed at `uri` too: otherwise
    it would read (and create) ./mlflow.db."""
    import mlflow
    import mlflow.artifacts

    mlflow.set_tracking_uri(uri)
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                    tracking_uri=uri))


def previous_runs(uri: str, experiment_name: str, exclude_run_id: str,
                  metric: str = "test/acc", limit: int = 10) -> list[dict[str, Any]]:
    """Earlier finished runs of this pipeline that have `metric`, newest first."""
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` >= 0 and "
                      f"{TOP_LEVEL}",
        order_by=["attributes.start_time DESC"], max_results=limit + 1)
    return [{
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "start_time": run.info.start_time,
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "tags": {k: v for k, v in run.data.tags.items() if k.startswith(("forgeml.", "dvc."))},
    } for run in runs if run.info.run_id != exclude_run_id][:limit]


def resolve_run(uri: str, run: str, pipeline: str) -> str:
    """A run id as given, or `champion` → the run behind the registered model's alias."""
    from forgeml.names import check_name

    check_name(pipeline, "registered model name (--pipeline)")
    if run != "champion":
        if not re.fullmatch(r"[0-9a-f]{32}", run):
            raise TrackingError(f"--run {run!r} is neither 'champion' nor an MLflow run id (32 "
                                "hex characters, as printed by the train stage).")
        return run
    from mlflow.exceptions import MlflowException

    try:
        version = client(uri).get_model_version_by_alias(pipeline, "champion")
    except MlflowException:
        raise TrackingError(
            f"No champion is registered for pipeline '{pipeline}' in {display_uri(uri)}. Pass an "
            "MLflow run "
            "id with --run, or promote a model (`forgeml retrain`).") from None
    return version.run_id
