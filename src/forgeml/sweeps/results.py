"""What a finished sweep leaves: the best trial as `conf/experiment/<name>_best.yaml` (an
ordinary experiment: `dvc exp run -S experiment=<name>_best`), the best and the default trial
evaluated once on the test split, and the sweep report (optimisation history, parameter
importances, parallel coordinates, best vs default, trials per hour with and without pruning),
logged to the parent run."""

from __future__ import annotations

import contextlib
import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import yaml
from omegaconf import OmegaConf
from optuna.trial import TrialState

from forgeml import tracking
from forgeml.io import atomic_write_json, atomic_write_text
from forgeml.sweeps.spec import SweepSpec
from forgeml.sweeps.trial import trial_config


def best_experiment_yaml(spec: SweepSpec, best: optuna.trial.FrozenTrial) -> str:
    groups = [p for p in spec.space if p.is_group]
    keys = {p.key: best.params[p.key] for p in spec.space if not p.is_group}
    extra = [o for o in spec.overrides if "=" in o]
    body = OmegaConf.to_container(OmegaConf.from_dotlist(
        [f"{k}={v}" for k, v in keys.items()] + extra))
    defaults = [spec.experiment] + [{f"override /{p.key}": best.params[p.key]} for p in groups]
    header = (f"# @package _global_\n# The best trial (#{best.number}) of `forgeml sweep "
              f"{spec.name}`: {spec.metric} {best.value:.4f} on validation.\n# Reproduce it "
              f"as an ordinary experiment: dvc exp run -S experiment={spec.name}_best\n")
    return header + yaml.safe_dump({"defaults": defaults, **body}, sort_keys=False)


def write_best(spec: SweepSpec, study: optuna.Study, conf_dir: Path) -> Path:
    path = conf_dir / "experiment" / f"{spec.name}_best.yaml"
    return atomic_write_text(path, best_experiment_yaml(spec, study.best_trial))


def evaluate_on_test(spec: SweepSpec, task, trial: optuna.trial.FrozenTrial, root: Path,
                     conf_dir: Path) -> dict[str, Any]:
    """The task's evaluate stage on one finished trial (its test metrics, logged to its run)."""
    cfg = trial_config(spec, dict(trial.params), root, conf_dir)
    task.stage("evaluate").run(cfg)
    return json.loads((Path(cfg.paths.metrics) / "test.json").read_text())


def throughput(study: optuna.Study) -> dict[str, float]:
    """Trials per hour of one worker: as run (pruned trials stop early) and if every trial had
    run to the end (the mean complete trial's duration)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                  TrialState.PRUNED))
            if t.datetime_start and t.datetime_complete]
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    complete = [s for s, t in zip(seconds, done, strict=True) if t.state == TrialState.COMPLETE]
    return {"with_pruning": 3600 * len(seconds) / max(sum(seconds), 1e-9),
            "without_pruning": 3600 / max(statistics.mean(complete), 1e-9) if complete else 0.0,
            "pruned": sum(t.state == TrialState.PRUNED for t in done),
            "complete": len(complete)}


def figures(study: optuna.Study) -> dict[str, bytes]:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    from forgeml.reporting.figures import _png

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, plot in (("history", plots.plot_optimization_history),
                           ("importances", plots.plot_param_importances),
                           ("parallel", plots.plot_parallel_coordinate)):
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # e.g. importances of a one-parameter space
                continue
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(8, 3.6)
            out[name] = _png(figure)
    return out


def report(spec: SweepSpec, study: optuna.Study, task, root: Path, conf_dir: Path,
           uri: str, parent_run_id: str, best_file: Path, defaults: dict) -> Path:
    """reports/sweeps/<name>/report.{html,md} and figures; logged to the parent run."""
    best = study.best_trial
    # The experiment as it is: the first finished trial with its values.
    default = next((t for t in study.trials if t.state == TrialState.COMPLETE
                    and t.params == defaults), None)
    tested = {"best": evaluate_on_test(spec, task, best, root, conf_dir)}
    if default is not None and default.number != best.number:
        tested["default"] = evaluate_on_test(spec, task, default, root, conf_dir)
    rate = throughput(study)
    importances = {}
    with contextlib.suppress(ValueError, RuntimeError):  # e.g. too few complete trials
        importances = optuna.importance.get_param_importances(study)
    summary = {"best_trial": best.number, "best_value": best.value,
               "best_params": best.params,
               "default_trial": default.number if default else None,
               "default_value": default.value if default else None,
               "test": tested, "throughput": rate, "importances": importances,
               "trials": [{"number": t.number, "state": t.state.name, "value": t.value,
                           "params": t.params, "shown": _shown(t.params)}
                          for t in study.trials]}
    out = Path("reports") / "sweeps" / spec.name
    path = _render(out, spec, summary, figures(study), best_file)
    atomic_write_json(root / "summary.json", summary)
    tracking.log_metrics(uri, parent_run_id, {
        f"best_{spec.metric.replace('/', '_')}": best.value,
        "trials_complete": rate["complete"], "trials_pruned": rate["pruned"],
        "trials_per_hour_with_pruning": rate["with_pruning"],
        "trials_per_hour_without_pruning": rate["without_pruning"],
        **{f"best_test_{k}": v for k, v in tested["best"].items()
           if isinstance(v, int | float)}})
    tracking.log_artifacts(uri, parent_run_id, [out, best_file], "sweep")
    return path


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def _render(out: Path, spec: SweepSpec, summary: dict, pngs: dict[str, bytes],
            best_file: Path) -> Path:
    import base64
    import datetime as dt

    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from forgeml.io import atomic_dir

    env = Environment(loader=PackageLoader("forgeml.reporting"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",)))
    context = {"spec": spec, "s": summary, "best_file": str(best_file),
               "verdict": _verdict(spec, summary),
               "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    with atomic_dir(out) as folder:
        (folder / "figures").mkdir()
        for name, png in pngs.items():
            (folder / "figures" / f"{name}.png").write_bytes(png)
        html = {k: base64.b64encode(v).decode() for k, v in pngs.items()}
        (folder / "report.html").write_text(env.get_template("sweep.html.j2").render(
            figures=html, **context), encoding="utf-8")
        (folder / "report.md").write_text(env.get_template("sweep.md.j2").render(
            figures=pngs, **context), encoding="utf-8")
    return out / "report.html"


def _verdict(spec: SweepSpec, s: dict) -> list[str]:
    rate = s["throughput"]
    words = [f"{rate['complete'] + rate['pruned']} trials ({rate['complete']} run to the end, "
             f"{rate['pruned']} stopped early by the pruner) searched "
             f"{', '.join(p.key for p in spec.space)} for the best {spec.metric} on the "
             "validation split."]
    default, best = s["default_value"], s["best_value"]
    if s["best_trial"] == s["default_trial"]:
        words.append(f"The best trial is the experiment as it is (trial #{s['best_trial']}, "
                     f"{best:.4f}): nothing in the searched space beat it.")
    elif default is not None:
        better = best > default if spec.direction == "maximize" else best < default
        words.append(f"The best trial (#{s['best_trial']}) reaches {best:.4f} against "
                     f"{default:.4f} for the experiment as it is (trial #{s['default_trial']})"
                     + ("." if better else ": the default was not beaten."))
    test = s["test"]
    if "acc" in test["best"]:
        def shown(m: dict) -> str:
            low, high = m.get("acc_ci_low"), m.get("acc_ci_high")
            return f"{m['acc']:.2%}" + (f" ({low:.2%}–{high:.2%})" if low is not None else "")

        words.append("On the test split, evaluated once: the best trial " + shown(test["best"])
                     + (f", the default {shown(test['default'])}" if "default" in test else "")
                     + ".")
    words.append(f"One worker runs {rate['with_pruning']:.0f} trials per hour with pruning, "
                 f"{rate['without_pruning']:.0f} if every trial ran to the end.")
    return words
