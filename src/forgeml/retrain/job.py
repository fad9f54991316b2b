"""`forgeml retrain <pipeline>`: the one command a schedule runs (see the package docstring)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from forgeml import tracking
from forgeml.artifacts import read_run
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.config import write_params
from forgeml.credentials import redact
from forgeml.dvc_command import dvc_executable
from forgeml.errors import ConfigError, DataError, ForgeMLError
from forgeml.locks import pipeline_lock
from forgeml.names import check_name
from forgeml.retrain import registry, scoring
from forgeml.tasks import compose, load_params


@dataclass
class DriftSettings:
    enabled: bool = True
    max_psi: float = 0.25
    block_promotion: bool = False


@dataclass
class RetrainSettings:
    dvc_file: str = "dvc.yaml"
    params_file: str = "params.yaml"
    compose: list[str] = field(default_factory=list)
    as_of: list[str] = field(default_factory=list)
    metric: str = "acc"
    greater_is_better: bool = True
    min_improvement: float = 0.0
    require_significant: bool = False
    floor: float = 0.0
    drift: DriftSettings = field(default_factory=DriftSettings)


def load_settings(root: Path, pipeline: str) -> RetrainSettings:
    check_name(pipeline)
    path = root / "conf" / "retrain" / f"{pipeline}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "conf" / "retrain").glob("*.yaml"))
        raise ConfigError(f"No retraining settings for pipeline '{pipeline}' ({path} missing). "
                          f"Configured: {', '.join(known) or 'none'}.")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RetrainSettings), OmegaConf.load(path))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {str(err).splitlines()[0]}") from None
    return OmegaConf.to_object(merged)


def retrain(pipeline: str, force: bool = False, wait: bool = False, as_of: str | None = None,
            overrides: list[str] | None = None, echo=print) -> dict:
    """Run one scheduled retrain; returns the recorded decision. Raises on failure."""
    root = tracking.project_root()
    settings = load_settings(root, pipeline)
    with pipeline_lock(root, pipeline, wait) as busy:
        if busy is not None:
            echo(f"another retrain of '{pipeline}' is running (pid {busy.get('pid', '?')}, since "
                 f"{busy.get('started', '?')}); nothing to do")
            return {"decision": "busy"}
        return _retrain_locked(root, pipeline, settings, force, as_of, overrides or [], echo)


def _retrain_locked(root: Path, pipeline: str, settings: RetrainSettings, force: bool,
                    as_of: str | None, overrides: list[str], echo) -> dict:
    params_path = root / settings.params_file
    if as_of or overrides:
        extra = [o.replace("{as_of}", as_of) for o in settings.as_of] if as_of else []
        cfg = compose([*settings.compose, *extra, *overrides], config_dir=root / "conf")
        write_params(cfg, params_path)
    cfg = load_params(params_path)
    if cfg.pipeline.name != pipeline:
        raise ConfigError(f"{settings.params_file} is pipeline '{cfg.pipeline.name}', not "
                          f"'{pipeline}'.")
    if scoring.metric_name(cfg) != settings.metric:
        raise ConfigError(f"conf/retrain/{pipeline}.yaml: metric '{settings.metric}' is not what "
                          f"this pipeline scores per example ('{scoring.metric_name(cfg)}').")
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    for run_id in tracking.mark_dead_runs(uri, cfg.logger.experiment_name):
        echo(f"run {run_id} was left RUNNING by a process that is gone: marked KILLED")
    context = {"pipeline": pipeline, "as_of": as_of or "",
               "overrides": " ".join(redact(o) for o in overrides)}

    _finish_interrupted(root, cfg, settings, uri, pipeline, context, echo)
    changes = _dvc_changes(root, settings.dvc_file)
    if not changes and not force:
        leftover = _unregistered_model(root, cfg, uri, pipeline)
        if leftover is None:
            echo(f"'{pipeline}': nothing changed (data, code and params match dvc.lock); "
                 "skipped")
            skipped = _record(uri, pipeline, {**context, "decision": "skipped",
                                              "reason": "nothing changed since the last run"}, {})
            push_outputs(root, settings.dvc_file, echo)  # what a down remote missed last time
            return skipped
        echo(f"'{pipeline}': nothing changed, but the current model (run {leftover}) was never "
             "registered (an interrupted retrain): judging it")
        return _register_and_judge(root, cfg, settings, uri, pipeline, leftover, context, echo)
    echo(f"'{pipeline}': changed ({', '.join(changes) or 'forced'}); running the pipeline")
    _dvc(root, ["repro", *(["--force"] if force else []), settings.dvc_file], echo)
    run_id = read_run(_at(root, cfg))["run_id"]
    decision = _register_and_judge(root, cfg, settings, uri, pipeline, run_id, context, echo)
    push_outputs(root, settings.dvc_file, echo)
    return decision


def push_outputs(root: Path, dvc_file: str, echo) -> None:
    """The run's outputs to the team's default DVC remote, when one is set: a teammate's `dvc
    pull` then gets them instead of recomputing (outputs marked `push: false`, data that may
    not be redistributed, stay local). After the decision is recorded: a remote that is down
    loses nothing, the next push sends them."""
    command = dvc_executable()
    remote = subprocess.run([command, "remote", "default"], cwd=root, capture_output=True,
                            text=True)
    if remote.returncode != 0 or not remote.stdout.strip():
        return  # no team remote: outputs stay in this project's cache
    name = remote.stdout.strip()
    pushed = subprocess.run([command, "push", "-r", name, dvc_file], cwd=root,
                            capture_output=True, text=True)
    if pushed.returncode != 0:
        lines = (pushed.stderr or pushed.stdout).strip().splitlines()
        raise ForgeMLError(
            f"The retraining decision is recorded, but pushing the outputs to the DVC remote "
            f"'{name}' failed ({lines[-1] if lines else 'no output'}): make it reachable and "
            f"run `dvc push {dvc_file}`; nothing is lost.")
    echo(f"pushed the outputs of {dvc_file} to the DVC remote '{name}'")


def _register_and_judge(root: Path, cfg: DictConfig, settings: RetrainSettings, uri: str,
                        pipeline: str, run_id: str, context: dict, echo,
                        version: str | None = None) -> dict:
    try:
        if version is None:
            version = registry.register(uri, pipeline, run_id)
            echo(f"registered {pipeline} version {version} (alias challenger), run {run_id}")
        decision = _judge(root, cfg, settings, uri, pipeline, version, run_id)
    except BaseException as err:
        if version is not None:
            registry.drop_challenger(uri, pipeline, version)
            registry.tag_version(uri, pipeline, version, {
                registry.DECISION: "failed", "forgeml.retrain.reason": str(err)[:500]})
        _record(uri, pipeline, {**context, "decision": "failed", "reason": str(err)[:500],
                                "challenger_version": version or ""}, {})
        raise
    decision.update(context)
    echo(f"decision: {decision['decision']} — {decision['reason']}")
    return _record(uri, pipeline, decision, decision.pop("metrics"))


def _finish_interrupted(root: Path, cfg: DictConfig, settings: RetrainSettings, uri: str,
                        pipeline: str, context: dict, echo) -> None:
    """A retrain or rollback killed part-way: finish a half-moved alias, and judge a registered
    challenger that was never judged (or mark it failed when its model is gone)."""
    found = registry.repair(uri, pipeline)
    if found.completed:
        echo(f"'{pipeline}': {found.completed}")
    if found.unjudged is None:
        return
    version, run_id = str(found.unjudged.version), found.unjudged.run_id
    echo(f"'{pipeline}': version {version} (run {run_id}) was registered but never judged "
         "(an interrupted retrain): judging it now")
    try:
        _register_and_judge(root, cfg, settings, uri, pipeline, run_id,
                            {**context, "note": "judged after an interrupted retrain"}, echo,
                            version=version)
    except Exception as err:  # noqa: BLE001 - e.g. its model is gone from the store
        echo(f"'{pipeline}': version {version} could not be judged and is marked failed "
             f"({str(err).splitlines()[0] if str(err) else type(err).__name__})")


def _unregistered_model(root: Path, cfg: DictConfig, uri: str, pipeline: str) -> str | None:
    """The pipeline's current model's run when no registry version holds it."""
    try:
        run_id = read_run(_at(root, cfg))["run_id"]
    except DataError:
        return None
    return None if registry.registered_run(uri, pipeline, run_id) else run_id


def _at(root: Path, cfg: DictConfig) -> DictConfig:
    """The config with its paths made absolute (stages ran at the repository root)."""
    cfg = cfg.copy()
    for key, value in cfg.paths.items():
        cfg.paths[key] = str(root / value)
    return cfg


def _judge(root: Path, cfg: DictConfig, settings: RetrainSettings, uri: str, pipeline: str,
           version: str, run_id: str) -> dict:
    cfg = _at(root, cfg)
    sign = 1.0 if settings.greater_is_better else -1.0
    ci = cfg.evaluate.confidence
    samples = cfg.evaluate.bootstrap_samples
    challenger = scoring.per_example(cfg, uri, run_id)
    metrics = {"challenger": float(challenger.mean())}
    low, high = bootstrap_interval(challenger, samples, ci, cfg.seed)
    metrics.update(challenger_ci_low=low, challenger_ci_high=high)
    champion = registry.alias_version(uri, pipeline, registry.CHAMPION)
    drift = None
    result = {"challenger_version": version, "challenger_run": run_id, "metric":
              settings.metric, "n_examples": len(challenger), "confidence": ci}
    if champion is None:
        promote = sign * (metrics["challenger"] - settings.floor) >= 0
        reason = (f"no champion yet; challenger {settings.metric} {metrics['challenger']:.4f} "
                  f"{'meets' if promote else 'is below'} the floor {settings.floor}")
        result["champion_version"] = ""
    else:
        incumbent = scoring.per_example(cfg, uri, champion.run_id)
        metrics["champion"] = float(incumbent.mean())
        low, high = bootstrap_interval(incumbent, samples, ci, cfg.seed)
        metrics.update(champion_ci_low=low, champion_ci_high=high)
        diff = paired_bootstrap_difference(challenger, incumbent, samples, ci, cfg.seed)
        metrics.update(difference=diff["difference"], difference_ci_low=diff["low"],
                       difference_ci_high=diff["high"])
        gain = sign * diff["difference"]
        significant = (diff["low"] > 0) if sign > 0 else (diff["high"] < 0)
        promote = gain > settings.min_improvement and (significant or
                                                        not settings.require_significant)
        reason = (f"challenger {settings.metric} {metrics['challenger']:.4f} vs champion "
                  f"v{champion.version} {metrics['champion']:.4f} on the same "
                  f"{len(challenger):,} examples: {diff['difference']:+.4f} ({level(ci)} interval "
                  f"{diff['low']:+.4f} to {diff['high']:+.4f}); needs > "
                  f"{settings.min_improvement}" + (" and significance"
                                                   if settings.require_significant else ""))
        result["champion_version"] = str(champion.version)
        if settings.drift.enabled:
            drift = scoring.drift(cfg, scoring.data_card(uri, champion.run_id),
                                  json.loads((Path(cfg.paths.prepared) /
                                              "data_card.json").read_text()))
            if drift["psi"] is not None:
                metrics["drift_psi"] = drift["psi"]
                if drift["psi"] > settings.drift.max_psi and settings.drift.block_promotion:
                    promote = False
                    reason += (f"; drift PSI {drift['psi']:.3f} > {settings.drift.max_psi} "
                               "blocks promotion")
    result.update(decision="promoted" if promote else "rejected", reason=reason, drift=drift,
                  metrics=metrics)
    tags = {"forgeml.retrain.reason": reason,
            f"forgeml.retrain.{settings.metric}": f"{metrics['challenger']:.6f}"}
    if champion is not None:
        registry.tag_version(uri, pipeline, str(champion.version), {
            "forgeml.retrain.last_challenger": version,
            "forgeml.retrain.last_outcome": "replaced" if promote else "kept",
            f"forgeml.retrain.{settings.metric}_now": f"{metrics['champion']:.6f}"})
    data_hash = tracking.client(uri).get_run(run_id).data.tags.get("forgeml.data_hash", "?")
    registry.describe_version(uri, pipeline, version, (
        f"Run {run_id} on data {data_hash.removeprefix('sha256:')[:12]}: test "
        f"{settings.metric} {metrics['challenger']:.4f} ({level(ci)} interval "
        f"{metrics['challenger_ci_low']:.4f} to {metrics['challenger_ci_high']:.4f}) on "
        f"{len(challenger):,} examples. {'Promoted to champion' if promote else 'Not promoted'}"
        f": {reason}."))
    registry.decide(uri, pipeline, version, promote, tags)
    return result


def _dvc_changes(root: Path, dvc_file: str) -> list[str]:
    """Stages that DVC would rerun (changed data, code or params), from `dvc status --json`."""
    out = _dvc(root, ["status", "--json", dvc_file], None)
    status = json.loads(out or "{}")
    return sorted(status)


def _dvc(root: Path, args: list[str], echo) -> str:
    result = subprocess.run([dvc_executable(), *args], cwd=root,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ForgeMLError(f"`dvc {' '.join(args)}` failed:\n{result.stderr[-2000:]}")
    if echo:
        for line in result.stdout.splitlines():
            if line.startswith(("Running stage", "Stage '")):
                echo(line)
    return result.stdout


def _record(uri: str, pipeline: str, decision: dict, metrics: dict) -> dict:
    """One run per retrain in the MLflow experiment `<pipeline>-retrain`, and the retraining
    section (history of decisions) under retrain/<pipeline>/."""
    from forgeml.retrain.history import write_history

    client = tracking.client(uri)
    name = f"{pipeline}-retrain"
    experiment_id = tracking.experiment_id(
        uri, name, f"Decisions of `forgeml retrain {pipeline}` (scheduled retraining): one run "
                   "per retrain, tagged with the decision (promoted, kept, nothing changed, "
                   "failed) and why, with the challenger's and the champion's metrics.")
    flat = {k: v for k, v in decision.items() if k not in ("drift", "metrics")}
    run = client.create_run(experiment_id, run_name=f"{decision['decision']}",
                            tags={f"forgeml.retrain.{k}": tracking.shown_value(k, v)[:5000]
                                  for k, v in flat.items()})
    if decision.get("drift"):
        client.log_dict(run.info.run_id, decision["drift"], "drift.json")
    if metrics:
        tracking.log_metrics(uri, run.info.run_id,
                             {k: v for k, v in metrics.items() if np.isfinite(v)})
    client.set_terminated(run.info.run_id)
    path = write_history(uri, pipeline, decision, metrics)
    if decision.get("challenger_run"):
        tracking.log_artifacts(uri, decision["challenger_run"], [path.parent], "report/retraining")
    return {**decision, "metrics": metrics}
