"""Render a task's report (self-contained HTML + Markdown with figures) and log it to MLflow."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.bootstrap import paired_bootstrap_difference
from forgeml.io import atomic_dir

log = logging.getLogger(__name__)
FIRST_RUN = ("This is the first evaluated run of this pipeline, so there is no earlier model to "
             "compare with.")


def write_report(cfg: DictConfig, run: dict, uri: str, task_template: str,
                 context: dict[str, Any], pngs: dict[str, bytes]) -> Path:
    """Write reports/<p>/report.{html,md} + figures/ atomically; log the folder to the run.
    `task_template` names `<task>.html.j2` / `<task>.md.j2`, which extend the base layout."""
    env = Environment(loader=PackageLoader("forgeml.reporting"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",)))
    context = {"generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), **context}
    html_context = {**context, "figures": {k: base64.b64encode(v).decode()
                                           for k, v in pngs.items()}}
    with atomic_dir(cfg.paths.reports) as out:
        (out / "figures").mkdir()
        for name, png in pngs.items():
            (out / "figures" / f"{name}.png").write_bytes(png)
        (out / "report.html").write_text(
            env.get_template(f"{task_template}.html.j2").render(**html_context), encoding="utf-8")
        (out / "report.md").write_text(
            env.get_template(f"{task_template}.md.j2").render(**context), encoding="utf-8")
        tracking.log_artifacts(uri, run["run_id"], [out], "report")  # before it is committed
    reports = Path(cfg.paths.reports)
    return reports / "report.html"


def table(columns: list[str], rows: list[list[Any]]) -> dict[str, list]:
    return {"columns": columns, "rows": rows}


def lineage(cfg: DictConfig, run: dict, tags: dict[str, str], uri: str) -> dict:
    commit = tags.get("forgeml.git_commit", "?")
    exp = tags.get("dvc.exp_name")
    checkout = f"dvc exp apply {exp}" if exp else f"git checkout {commit}"
    dvc_file = cfg.pipeline.get("dvc_file", "dvc.yaml")
    repro = "dvc repro" if dvc_file == "dvc.yaml" else f"dvc repro {dvc_file}"
    default_store = uri.startswith("sqlite:///") and uri.endswith("/mlflow.db")
    shown_uri = "sqlite:///mlflow.db" if default_store else tracking.display_uri(uri)
    compare = f"open {shown_uri} in a browser" if uri.startswith(("http://", "https://")) \
        else f"mlflow ui --backend-store-uri {shown_uri}"
    rows = [
        ("MLflow run", run["run_id"]),
        ("MLflow experiment", run["experiment_name"]),
        ("Git commit", commit + (" (uncommitted changes)"
                                 if tags.get("forgeml.git_dirty") == "true" else "")),
        ("Data hash", tags.get("forgeml.data_hash", "?")),
        ("Config hash", tags.get("forgeml.config_hash", "?")),
    ]
    if exp:
        rows.append(("DVC experiment", exp))
    return {"run_id": run["run_id"], "rows": rows, "reproduce": f"{checkout} && {repro}",
            "compare": compare}


def points(x: float) -> str:
    """A difference of proportions in percentage points, signed."""
    return f"{x * 100:+.1f} points"


def paired_with_previous(cfg: DictConfig, uri: str, run_id: str, artifact_path: str,
                         read: Callable[[Path], np.ndarray], mine: np.ndarray,
                         lower_is_better: bool = False) -> dict | None:
    """Paired bootstrap of this run's per-example values against the previous run's (read from
    its `artifact_path`), oriented so that > 0 means this run is better; None when that run has
    no such artifact or scored a different number of examples."""
    try:
        path = tracking.download(uri, run_id, artifact_path)
        theirs = read(Path(path))
    except Exception as err:  # an old run without the artifact: intervals only
        log.warning("cannot load %s of run %s: %s", artifact_path, run_id, err)
        return None
    if len(mine) != len(theirs):
        return None
    better, worse = (theirs, mine) if lower_is_better else (mine, theirs)
    ev = cfg.evaluate
    return paired_bootstrap_difference(better, worse, ev.bootstrap_samples, ev.confidence,
                                       cfg.seed)


def judgement(diff: dict) -> tuple[bool, bool, str]:
    """(clearly better, clearly worse, words) for a paired difference where > 0 is better."""
    better, worse = diff["low"] > 0, diff["high"] < 0
    words = ("a clear improvement" if better else "a clear regression" if worse
             else "within noise: not clearly different")
    return better, worse, words
