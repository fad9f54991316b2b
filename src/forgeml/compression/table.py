"""The compress stage's table, shared by every task: each variant (a model call and its file)
scored on the same test inputs — accuracy with its interval and the paired difference with the
reference (the trained PyTorch model), size on disk, p50/p99 latency of one input and batch
throughput — the int8 gate, the recommendation, and the stage's outputs (DVC metrics and plot,
the MLflow run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.compression.latency import latency
from forgeml.io import staged_outputs
from forgeml.serving.export import in_batches
from forgeml.serving.runtime import Run, onnx_runner

REFERENCE = "pytorch_fp32"
INT8 = "onnx_int8"


@dataclass
class Variant:
    key: str
    name: str
    file: Path  # what would ship: its size is the size on disk
    run: Run | None = None  # None: ONNX Runtime over `file`


def score(cfg: DictConfig, variant: Variant, inputs: dict[str, np.ndarray],
          labels: np.ndarray, single: dict[str, np.ndarray], batch: dict[str, np.ndarray],
          reference: np.ndarray | None) -> dict:
    c, ev = cfg.compress, cfg.evaluate
    run = variant.run or onnx_runner(variant.file, c.threads)
    probs = in_batches(run, inputs, 256)
    correct = (probs.argmax(1) == labels).astype(float)
    row = {"key": variant.key, "name": variant.name, "acc": float(correct.mean()),
           "acc_ci": bootstrap_interval(correct, ev.bootstrap_samples, ev.confidence, cfg.seed),
           "size_mb": variant.file.stat().st_size / 1e6,
           **latency(run, single, batch, c.latency_calls, c.throughput_seconds),
           "correct": correct}
    if reference is not None:
        row["vs_fp32"] = paired_bootstrap_difference(correct, reference, ev.bootstrap_samples,
                                                     ev.confidence, cfg.seed)
    return row


def recommendation(rows: list[dict], max_drop: float) -> dict:
    """The fastest variant (p99) that loses at most `max_drop` accuracy points."""
    fp32 = rows[0]
    fine = [r for r in rows if (fp32["acc"] - r["acc"]) * 100 <= max_drop]
    best = min(fine, key=lambda r: r["p99_ms"])
    return {"key": best["key"], "name": best["name"],
            "speedup_p99": fp32["p99_ms"] / best["p99_ms"],
            "smaller": fp32["size_mb"] / best["size_mb"],
            "drop_points": (fp32["acc"] - best["acc"]) * 100}


def table(cfg: DictConfig, variants: list[Variant], inputs: dict[str, np.ndarray],
          labels: np.ndarray, single: dict[str, np.ndarray],
          batch: dict[str, np.ndarray]) -> dict:
    """Score every variant (the first is the reference) at `compress.threads` threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.compress.threads)
    try:
        rows = [score(cfg, variants[0], inputs, labels, single, batch, None)]
        rows += [score(cfg, v, inputs, labels, single, batch, rows[0]["correct"])
                 for v in variants[1:]]
    finally:
        torch.set_num_threads(threads)
    for row in rows:
        row.pop("correct")
    by_key = {row["key"]: row for row in rows}
    drop = (by_key[REFERENCE]["acc"] - by_key[INT8]["acc"]) * 100
    return {"rows": rows, "threads": cfg.compress.threads, "n_test": int(len(labels)),
            "int8_gate": {"drop_points": drop, "max_drop": cfg.compress.int8_max_drop,
                          "passed": bool(drop <= cfg.compress.int8_max_drop)},
            "recommendation": recommendation(rows, cfg.compress.int8_max_drop)}


def write(cfg: DictConfig, result: dict, artifacts: list[tuple[Path, str]]) -> None:
    """metrics/<p>/compression.json (headline + detail) and plots/<p>/compression.json (one row
    per variant), logged into the pipeline's run with the compressed models (`artifacts`)."""
    from forgeml.artifacts import read_run

    run_id = read_run(cfg)["run_id"]
    uri = tracking.tracking_uri(cfg)
    rows = result["rows"]
    headline = {f"{r['key']}_{m}": r[m] for r in rows for m in ("acc", "p99_ms", "size_mb")}
    headline.update(int8_drop_points=result["int8_gate"]["drop_points"],
                    int8_gate_passed=result["int8_gate"]["passed"])
    plot = [{k: r[k] for k in ("key", "name", "acc", "p50_ms", "p99_ms", "size_mb",
                               "throughput_per_s")} for r in rows]
    with staged_outputs() as staged:
        table_file = staged.write_json(Path(cfg.paths.plots) / "compression.json", plot)
        metrics = staged.write_json(Path(cfg.paths.metrics) / "compression.json",
                                    {**headline, "detail": result})
        # Logged before the outputs are committed: outputs never describe a run MLflow lacks.
        tracking.log_metrics(uri, run_id, {f"compress/{k}": float(v)
                                           for k, v in headline.items()})
        tracking.log_artifacts(uri, run_id, [metrics, table_file], "compression")
        for path, artifact_path in artifacts:
            tracking.log_artifacts(uri, run_id, [path], artifact_path)
        for row in rows:  # each variant beside the model in MLflow's UI
            tracking.log_child_run(
                uri, run_id, f"compress/{row['key']}", f"compressed: {row['name']}",
                {"test/acc": row["acc"], "latency/p50_ms": row["p50_ms"],
                 "latency/p99_ms": row["p99_ms"], "size_mb": row["size_mb"],
                 "throughput_per_s": row["throughput_per_s"]},
                {"forgeml.kind": "compressed variant"})


def write_skipped(cfg: DictConfig, result: dict) -> None:
    """The stage's outputs when there is nothing to compress (the report says why)."""
    with staged_outputs() as staged:
        staged.write_json(Path(cfg.paths.plots) / "compression.json", [])
        staged.write_json(Path(cfg.paths.metrics) / "compression.json", {"detail": result})


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    rows = {r["key"]: r for r in result["rows"]}
    fp32, int8 = rows[REFERENCE], rows[INT8]
    gate, best = result["int8_gate"], result["recommendation"]
    low, high = int8["acc_ci"]
    return (f"int8: accuracy {int8['acc']:.4f} ({ci} CI {low:.4f}-{high:.4f}) vs fp32 "
            f"{fp32['acc']:.4f}, gate {'passed' if gate['passed'] else 'FAILED'} "
            f"({gate['drop_points']:+.2f} points lost, at most {gate['max_drop']}); p99 "
            f"{int8['p99_ms']:.3f} ms vs {fp32['p99_ms']:.3f} ms; recommended: {best['name']}")
