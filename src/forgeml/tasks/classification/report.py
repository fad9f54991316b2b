"""report (classification): a verdict a product manager can act on, with the evidence an
engineer checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_evaluation, read_run
from forgeml.data.tensors import load_split
from forgeml.reporting import figures
from forgeml.reporting.render import (
    FIRST_RUN,
    judgement,
    lineage,
    paired_with_previous,
    points,
    table,
    write_report,
)


def report(cfg: DictConfig) -> Path:
    """Write reports/<p>/report.html (self-contained) and report.md; log both to the run."""
    run = read_run(cfg)
    card = read_data_card(cfg)
    result = read_evaluation(cfg)
    predictions = _read_predictions(Path(cfg.paths.eval) / "predictions.csv")
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    mlflow_client = tracking.client(uri)
    tags = mlflow_client.get_run(run["run_id"]).data.tags
    earlier = tracking.previous_runs(uri, cfg.logger.experiment_name, run["run_id"])
    previous = _compare_with_previous(uri, earlier[0] if earlier else None, predictions, card,
                                      cfg) if earlier else None

    names = list(cfg.data.class_names)
    pngs = {
        "learning_curves": figures.learning_curves(run["history"]),
        "confusion_matrix": figures.confusion_matrix(result["confusion_matrix"], names),
        "per_class_f1": figures.per_class_f1(result["per_class"]["f1"], names),
        "misclassified": _misclassified_figure(cfg, predictions, names),
    }
    context = {
        "title": f"{cfg.pipeline.name}: {tags.get('forgeml.model', 'model')} on "
                 f"{card['source']}",
        "verdict": _verdict(cfg, run, card, result, previous),
        "comparison": _comparison_rows(tags, result, previous),
        "training_note": _training_note(cfg, run),
        "per_class": [{
            "name": name, "precision": f"{p:.3f}", "recall": f"{r:.3f}", "f1": f"{f:.3f}",
            "support": s} for name, p, r, f, s in zip(
                names, *(result["per_class"][k] for k in ("precision", "recall", "f1", "support")),
                strict=True)],
        "fairness_note": _fairness_note(names, result["per_class"]["f1"]),
        "quality": [
            ("Macro F1", f"{result['f1_macro']:.3f}"),
            ("Macro precision", f"{result['precision_macro']:.3f}"),
            ("Macro recall", f"{result['recall_macro']:.3f}"),
            ("Test loss (cross-entropy)", f"{result['loss']:.4f}"),
            ("Expected calibration error", f"{result['ece']:.3f} (0 = confidence matches "
                                           "accuracy)"),
        ],
        "data_card": _data_card_rows(card),
        "cost": [
            ("Parameters", f"{run['parameters']:,}"),
            ("Model size (float32)", f"{run['parameters'] * 4 / 1e6:.2f} MB"),
            ("Training time", f"{run['train_seconds']:.1f} s over {run['epochs_trained']} epochs"),
            ("Training throughput", f"{run['train_samples_per_second']:,.0f} samples/s"),
            ("Inference latency (1 image, CPU)", f"{result['cost']['latency_ms_single']:.2f} ms"),
            ("Inference throughput (batch 256, CPU)",
             f"{result['cost']['throughput_samples_per_s']:,.0f} images/s"),
        ],
        "history": table(["Run", "Model", "Data", "Test accuracy"], [[
            r["run_name"] or r["run_id"][:8], r["tags"].get("forgeml.model", "?"),
            r["params"].get("data.name", "?"), f"{r['metrics']['test/acc']:.2%}"]
            for r in earlier]),
        "lineage": lineage(cfg, run, tags, uri),
    }
    return write_report(cfg, run, uri, "classification", context, pngs)


def _read_predictions(path: Path) -> dict[str, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {"label": table[:, 1].astype(int), "predicted": table[:, 2].astype(int),
            "confidence": table[:, 3]}


def _compare_with_previous(uri: str, previous: dict, predictions: dict, card: dict,
                           cfg: DictConfig) -> dict:
    """Paired bootstrap on the same test examples when the data is identical; else intervals."""
    info = {"name": previous["run_name"] or previous["run_id"][:8],
            "run_id": previous["run_id"], "acc": previous["metrics"]["test/acc"],
            "ci": (previous["metrics"].get("test/acc_ci_low"),
                   previous["metrics"].get("test/acc_ci_high")),
            "model": previous["tags"].get("forgeml.model", "?"), "paired": None}
    if previous["tags"].get("forgeml.data_hash") == card["data_hash"]:
        info["paired"] = paired_with_previous(
            cfg, uri, previous["run_id"], "evaluation/predictions.csv", _correct,
            _correct(predictions))
    return info


def _correct(predictions: dict | Path) -> np.ndarray:
    if isinstance(predictions, Path):
        predictions = _read_predictions(predictions)
    return predictions["predicted"] == predictions["label"]


def _verdict(cfg, run, card, result, previous) -> dict:
    low, high = result["acc_ci"]
    model = cfg.model["_target_"].rsplit(".", 1)[-1]
    sentences = [
        f"We trained a {model} ({run['parameters']:,} parameters) to tell apart "
        f"{cfg.data.num_classes} classes of {card['source']} images, from "
        f"{card['counts']['train']:,} training examples.",
        f"On {result['n_test']:,} test images it never saw, it is right {result['acc']:.1%} of "
        f"the time (95% interval {low:.1%} to {high:.1%}).",
    ]
    if "baseline" in result:
        base, gap = result["baseline"], result["baseline"]["vs_model"]
        clear = gap["low"] > 0
        sentences.append(
            f"A simple {base['name']} baseline gets {base['acc']:.1%}: the model is "
            f"{points(gap['difference'])} {'better' if gap['difference'] >= 0 else 'worse'} "
            f"(95% interval {points(gap['low'])} to {points(gap['high'])}; "
            f"{'a clear difference' if clear or gap['high'] < 0 else 'not a clear difference'}).")
    better = worse = False
    if previous is None:
        sentences.append(FIRST_RUN)
        better = "baseline" not in result or result["baseline"]["vs_model"]["low"] > 0
    elif previous["paired"]:
        diff = previous["paired"]
        better, worse, words = judgement(diff)
        sentences.append(
            f"Against the previous run ({previous['model']} '{previous['name']}', "
            f"{previous['acc']:.1%}) on the same test images it is {points(diff['difference'])} "
            f"(95% interval {points(diff['low'])} to {points(diff['high'])}): {words}.")
    else:
        delta = result["acc"] - previous["acc"]
        sentences.append(
            f"The previous run ({previous['model']} '{previous['name']}') scored "
            f"{previous['acc']:.1%} on different test data, so the {points(delta)} gap is "
            "indicative only.")
    return {"sentences": sentences, "better": better, "worse": worse}


def _comparison_rows(tags, result, previous) -> dict:
    def ci(pair) -> str:
        return f"{pair[0]:.1%} – {pair[1]:.1%}" if pair and pair[0] is not None else "–"

    rows = [[f"This run ({tags.get('forgeml.model', 'model')})", f"{result['acc']:.1%}",
             ci(result["acc_ci"])]]
    if previous:
        rows.append([f"Previous run ({previous['model']} '{previous['name']}')",
                     f"{previous['acc']:.1%}", ci(previous["ci"])])
    if "baseline" in result:
        rows.append([f"Baseline ({result['baseline']['name']})",
                     f"{result['baseline']['acc']:.1%}", ci(result["baseline"]["acc_ci"])])
    return table(["Model", "Test accuracy", "95% interval"], rows)


def _training_note(cfg, run) -> str:
    history = run["history"]
    best = min(history, key=lambda h: h["val_loss"])
    last = history[-1]
    stop = (f"stopped early after {len(history)} epochs because validation loss had not "
            f"improved for {cfg.train.early_stopping.patience} epochs"
            if run["stopped_early"] else f"ran all {len(history)} epochs")
    gap = last["train_acc"] - last["val_acc"]
    fit = ("train and validation accuracy are close, so it is not memorising the training set"
           if gap < 0.02 else f"train accuracy is {gap * 100:.1f} points above validation "
           "accuracy: some overfitting")
    return (f"Training {stop}; the checkpoint with the lowest validation loss (epoch "
            f"{best['epoch']}, validation accuracy {best['val_acc']:.1%}) is the model "
            f"evaluated here. In the last epoch {fit}.")


def _fairness_note(names: list[str], f1: list[float]) -> str:
    weakest, strongest = int(np.argmin(f1)), int(np.argmax(f1))
    return (f"Weakest class: {names[weakest]} (F1 {f1[weakest]:.3f}); strongest: "
            f"{names[strongest]} (F1 {f1[strongest]:.3f}). The gap of "
            f"{(f1[strongest] - f1[weakest]) * 100:.1f} points is how unevenly the model serves "
            "different classes.")


def _data_card_rows(card: dict) -> list[tuple[str, str]]:
    removed = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in card["removed"].items()) \
        or "nothing (de-duplication off)"
    return [
        ("Source", card["source"]),
        ("Origin", card["origin"]),
        ("Licence", card["licence"]),
        ("Examples", f"{card['raw_count']:,} raw → " + ", ".join(
            f"{k} {v:,}" for k, v in card["counts"].items())),
        ("Split", f"{card['split']['protocol']} (seed {card['split']['seed']})"),
        ("Per class (train)", ", ".join(
            f"{n}: {c}" for n, c in zip(card["class_names"], card["class_counts"]["train"],
                                        strict=True))),
        ("Cleaning removed", removed),
        ("Data hash", card["data_hash"]),
    ]


def _misclassified_figure(cfg, predictions, names) -> bytes:
    images, _ = load_split(cfg.paths.prepared, "test")
    wrong = np.flatnonzero(predictions["predicted"] != predictions["label"])
    # Most confident mistakes first: they are the most telling.
    wrong = wrong[np.argsort(-predictions["confidence"][wrong])][
        :cfg.evaluate.max_misclassified_shown]
    return figures.misclassified_grid(
        images[wrong].numpy(), [names[i] for i in predictions["label"][wrong]],
        [names[i] for i in predictions["predicted"][wrong]],
        predictions["confidence"][wrong].tolist())


def summarize(cfg: DictConfig, path: Path) -> str:
    result = read_evaluation(cfg)
    low, high = result["acc_ci"]
    return (f"[bold]{cfg.pipeline.name}: test accuracy {result['acc']:.2%} (95% CI {low:.2%}-"
            f"{high:.2%})[/bold]\nreport: {path.resolve()}")
