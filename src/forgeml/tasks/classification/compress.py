"""compress (classification): can the model run in real time, and what does a cheaper one
cost in accuracy? On the same test split, at a fixed thread count: PyTorch fp32 (the trained
model), ONNX fp32, ONNX int8 (dynamic quantisation), a structurally pruned copy fine-tuned back,
and a distilled student. Each with accuracy (interval, paired difference vs PyTorch fp32),
size on disk, p50/p99 batch-1 latency and batch throughput; the int8 model passes its gate when
it loses at most `compress.int8_max_drop` accuracy points."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_run
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.compression.distillation import fit
from forgeml.compression.latency import latency
from forgeml.compression.pruning import prune
from forgeml.data.tensors import load_split
from forgeml.io import staged_outputs
from forgeml.models.classifier import build_network
from forgeml.models.registry import instantiate_network
from forgeml.saved_network import WEIGHTS_FILE, save_network
from forgeml.serving.bundle import Bundle
from forgeml.serving.export import build_bundle, in_batches
from forgeml.serving.runtime import Run, onnx_runner, torch_runner
from forgeml.tasks.classification.export import exportable_network
from forgeml.tasks.classification.network import load_network

REFERENCE = "pytorch_fp32"


def exported(network, cfg: DictConfig, images: torch.Tensor, folder: Path,
             quantize: bool) -> Bundle:
    exportable = exportable_network(network, cfg.data.class_names, cfg.data.image_shape)
    return build_bundle(exportable, {"images": images[:256].numpy()}, folder, quantize,
                        {"task": "classification", "pipeline": cfg.pipeline.name,
                         "run_id": "compress"})


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def variants(cfg: DictConfig, teacher, scratch: Path) -> list[dict]:
    """Each variant: name, how it runs (a batch-in, probabilities-out call) and its file."""
    c = cfg.compress
    train_images, train_labels = load_split(cfg.paths.prepared, "train")
    card = read_data_card(cfg)
    example = train_images[:2]

    base = exported(teacher, cfg, train_images, scratch / "teacher", quantize=True)
    save_network(teacher, scratch / "teacher-torch")
    pruned = prune(teacher[1], (example - card["normalization"]["mean"])
                   / card["normalization"]["std"], c.prune_amount)
    pruned = fit(build_network(pruned, **card["normalization"]), train_images, train_labels,
                 c.finetune_epochs, cfg.train.batch_size, c.lr, cfg.seed)
    student = fit(build_network(instantiate_network(c.student), **card["normalization"]),
                  train_images, train_labels, c.distill_epochs, cfg.train.batch_size, c.lr,
                  cfg.seed, teacher=teacher, temperature=c.temperature, alpha=c.alpha)
    pruned_bundle = exported(pruned, cfg, train_images, scratch / "pruned", quantize=False)
    student_bundle = exported(student, cfg, train_images, scratch / "student", quantize=False)
    threads = c.threads
    probabilities = torch.nn.Sequential(teacher, torch.nn.Softmax(-1))
    return [
        {"key": REFERENCE, "name": "PyTorch fp32 (trained model)",
         "run": torch_runner(probabilities, ["images"], threads),
         "file": scratch / "teacher-torch" / WEIGHTS_FILE},
        {"key": "onnx_fp32", "name": "ONNX fp32", "file": base.model_file("onnx")},
        {"key": "onnx_int8", "name": "ONNX int8 (dynamic quantisation)",
         "file": base.model_file("int8")},
        {"key": "pruned", "name": f"pruned {c.prune_amount:.0%} + fine-tuned (ONNX fp32)",
         "file": pruned_bundle.model_file("onnx"), "network": pruned},
        {"key": "student", "name": "distilled student (ONNX fp32)",
         "file": student_bundle.model_file("onnx"), "network": student},
    ]


def measure(cfg: DictConfig, entry: dict, images: torch.Tensor, labels: np.ndarray,
            reference: np.ndarray | None) -> dict:
    c, ev = cfg.compress, cfg.evaluate
    run: Run = entry.get("run") or onnx_runner(entry["file"], c.threads)
    probs = in_batches(run, {"images": images.numpy()}, cfg.train.eval_batch_size)
    correct = (probs.argmax(1) == labels).astype(float)
    row = {"key": entry["key"], "name": entry["name"], "acc": float(correct.mean()),
           "acc_ci": bootstrap_interval(correct, ev.bootstrap_samples, ev.confidence, cfg.seed),
           "size_mb": size_mb(entry["file"]),
           **latency(run, {"images": images[:1].numpy()},
                     {"images": images[:c.throughput_batch].numpy()}, c.latency_calls)}
    if reference is not None:
        row["vs_fp32"] = paired_bootstrap_difference(correct, reference, ev.bootstrap_samples,
                                                     ev.confidence, cfg.seed)
    row["correct"] = correct
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


def compress(cfg: DictConfig) -> dict:
    """Write metrics/<p>/compression.json and plots/<p>/compression.json; log to the run."""
    run = read_run(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    images, labels = load_split(cfg.paths.prepared, "test")
    labels = labels.numpy()
    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        entries = variants(cfg, load_network(cfg), Path(scratch))
        torch.set_num_threads(cfg.compress.threads)
        try:
            rows = [measure(cfg, entries[0], images, labels, None)]
            rows += [measure(cfg, e, images, labels, rows[0]["correct"]) for e in entries[1:]]
        finally:
            torch.set_num_threads(threads)
        for row in rows:
            row.pop("correct")
        by_key = {row["key"]: row for row in rows}
        drop = (by_key[REFERENCE]["acc"] - by_key["onnx_int8"]["acc"]) * 100
        result = {"rows": rows, "threads": cfg.compress.threads, "n_test": len(labels),
                  "int8_gate": {"drop_points": drop, "max_drop": cfg.compress.int8_max_drop,
                                "passed": bool(drop <= cfg.compress.int8_max_drop)},
                  "recommendation": recommendation(rows, cfg.compress.int8_max_drop)}
        headline = {f"{r['key']}_{m}": r[m] for r in rows for m in ("acc", "p99_ms", "size_mb")}
        headline.update(int8_drop_points=drop, int8_gate_passed=result["int8_gate"]["passed"])
        plot = [{k: r[k] for k in ("key", "name", "acc", "p50_ms", "p99_ms", "size_mb",
                                   "throughput_per_s")} for r in rows]
        with staged_outputs() as staged:
            table = staged.write_json(Path(cfg.paths.plots) / "compression.json", plot)
            metrics = staged.write_json(Path(cfg.paths.metrics) / "compression.json",
                                        {**headline, "detail": result})
            tracking.log_metrics(uri, run["run_id"], {
                f"compress/{k}": float(v) for k, v in headline.items()})
            tracking.log_artifacts(uri, run["run_id"], [metrics, table], "compression")
            for entry in entries[3:]:
                folder = save_network(entry["network"], Path(scratch) / entry["key"])
                tracking.log_artifacts(uri, run["run_id"], [folder],
                                       f"compression/{entry['key']}")
            tracking.log_artifacts(uri, run["run_id"], [entries[2]["file"]], "compression")
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    rows = {r["key"]: r for r in result["rows"]}
    fp32, int8 = rows[REFERENCE], rows["onnx_int8"]
    gate = result["int8_gate"]
    best = result["recommendation"]
    low, high = int8["acc_ci"]
    return (f"int8: accuracy {int8['acc']:.4f} ({ci} CI {low:.4f}-{high:.4f}) vs fp32 "
            f"{fp32['acc']:.4f}, gate {'passed' if gate['passed'] else 'FAILED'} "
            f"({gate['drop_points']:+.2f} points lost, at most {gate['max_drop']}); p99 "
            f"{int8['p99_ms']:.3f} ms vs {fp32['p99_ms']:.3f} ms; recommended: {best['name']}")
