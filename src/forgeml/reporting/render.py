"""Render a task's report (self-contained HTML + Markdown with figures) and log it to MLflow."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.io import atomic_dir


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
    server = uri.startswith(("http://", "https://"))
    compare = f"open {shown_uri} in a browser" if server \
        else f"mlflow ui --backend-store-uri {shown_uri}"
    page = tracking.ui_page(tracking.display_uri(uri) if server else "http://127.0.0.1:5000",
                            tracking.client(uri).get_run(run["run_id"]).info.experiment_id,
                            run["run_id"])
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
            "compare": compare, "page": page}
