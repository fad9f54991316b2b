"""The retraining section of a pipeline's report: this decision (challenger vs champion with
intervals, drift) and every earlier scheduled run's decision, from the `<p>-retrain` experiment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from forgeml import tracking
from forgeml.bootstrap import level
from forgeml.io import atomic_dir


def past_decisions(uri: str, pipeline: str, limit: int = 50) -> list[dict]:
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(f"{pipeline}-retrain")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"],
                              max_results=limit)
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        rows.append({
            "when": dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC)
            .strftime("%Y-%m-%d %H:%M"),
            "as_of": tags.get("forgeml.retrain.as_of", ""),
            "decision": tags.get("forgeml.retrain.decision", "?"),
            "challenger": tags.get("forgeml.retrain.challenger_version", ""),
            "champion": tags.get("forgeml.retrain.champion_version", ""),
            "challenger_metric": _fmt(metrics.get("challenger")),
            "champion_metric": _fmt(metrics.get("champion")),
            "reason": tags.get("forgeml.retrain.reason", ""),
        })
    return rows


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "–"


def write_history(uri: str, pipeline: str, decision: dict, metrics: dict) -> Path:
    """retrain/<pipeline>/retraining.{md,html}; outside DVC's outputs, so writing it never makes
    the pipeline look changed."""
    env = Environment(loader=PackageLoader("forgeml.reporting"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",)))
    drift = decision.get("drift") or {}
    context = {
        "pipeline": pipeline, "decision": decision, "metrics": metrics, "drift": drift,
        "history": past_decisions(uri, pipeline),
        # Judged decisions carry the confidence of their intervals (`evaluate.confidence`).
        "level": level(decision["confidence"]) if "confidence" in decision else "",
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    folder = tracking.project_root() / "retrain" / pipeline
    with atomic_dir(folder) as out:
        for kind in ("md", "html"):
            (out / f"retraining.{kind}").write_text(
                env.get_template(f"retraining.{kind}.j2").render(**context), encoding="utf-8")
    return folder / "retraining.md"
