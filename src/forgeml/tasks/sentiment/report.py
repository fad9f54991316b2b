"""report (sentiment): is the fine-tuned transformer better than the cheap baselines, the same
network without pretraining, and the last run; by how much, for which reviews, at what cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_evaluation, read_run
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
from forgeml.tasks.sentiment.evaluate import MAIN


def report(cfg: DictConfig) -> Path:
    run = read_run(cfg)
    card = read_data_card(cfg)
    result = read_evaluation(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    tags = tracking.client(uri).get_run(run["run_id"]).data.tags
    earlier = tracking.previous_runs(uri, cfg.logger.experiment_name, run["run_id"], "test/acc")
    previous = _compare_with_previous(cfg, uri, earlier[0], card) if earlier else None
    models = {name: result["models"][name] for name in result["order"]}
    main = models[MAIN]

    histories = {main["label"]: run["history"]}
    baseline_runs = _baseline_histories(cfg)
    histories.update({models[n]["label"]: h for n, h in baseline_runs.items() if h})
    pngs = {
        "accuracy_vs_cost": figures.accuracy_vs_cost(
            [(m["label"], m["acc"], tuple(m["acc_ci"]), m["seconds_per_1k"])
             for name, m in models.items() if name != "majority"]),
        "learning_curves": figures.validation_curves(histories),
        "confusion_matrix": figures.confusion_matrix(result["confusion_matrix"],
                                                     result["class_names"]),
        "calibration": figures.reliability_diagram(result["reliability"]),
        "slices": figures.slice_bars(
            [{**s, **{models[n]["label"]: s[n] for n in models if n != "majority"}}
             for s in result["slices"]],
            [m["label"] for n, m in models.items() if n != "majority"],
            "Accuracy by review length (higher is better)", count_key="texts"),
    }
    context = {
        "title": f"{cfg.pipeline.name}: {main['label']} on {card['name']}",
        "verdict": _verdict(run, card, result, previous),
        "comparison": _comparison(result, previous),
        "training_note": _training_note(run, cfg),
        "slices": table(["Review length", "Test texts",
                         *[m["label"] for m in models.values()]],
                        [[s["bucket"], s["texts"], *[f"{s[n]:.1%}" if s[n] is not None else "–"
                                                     for n in models]]
                         for s in result["slices"]]),
        "slice_note": _slice_note(result["slices"], main["label"]),
        "errors": result["confident_errors"],
        "calibration_note": (
            f"Expected calibration error {main['ece']:.3f}: when the model says it is "
            f"{int(round(result['reliability'][-1]['confidence'] * 100))}% sure, it is right "
            f"{result['reliability'][-1]['accuracy']:.0%} of the time (most confident bin)."
            if result["reliability"] else ""),
        "data_card": _data_card_rows(card),
        "cost": _cost_rows(run, main, result),
        "history": table(["Run", "Model", "Test accuracy", "Macro F1"], [[
            r["run_name"] or r["run_id"][:8], r["tags"].get("forgeml.model", "?"),
            f"{r['metrics']['test/acc']:.1%}",
            f"{r['metrics'].get('test/f1_macro', float('nan')):.3f}"] for r in earlier]),
        "lineage": lineage(cfg, run, tags, uri),
    }
    return write_report(cfg, run, uri, "sentiment", context, pngs)


def _baseline_histories(cfg: DictConfig) -> dict[str, list[dict]]:
    import json

    if not cfg.get("baselines"):
        return {}
    path = Path(cfg.paths.baselines) / "baselines.json"
    records = json.loads(path.read_text()) if path.is_file() else {}
    return {name: r.get("history", []) for name, r in records.items()}


def _read_correct(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=4, ndmin=1)


def _compare_with_previous(cfg: DictConfig, uri: str, previous: dict, card: dict) -> dict:
    info = {"name": previous["run_name"] or previous["run_id"][:8],
            "model": previous["tags"].get("forgeml.model", "?"),
            "acc": previous["metrics"]["test/acc"],
            "ci": (previous["metrics"].get("test/acc_ci_low"),
                   previous["metrics"].get("test/acc_ci_high")), "paired": None}
    if previous["tags"].get("forgeml.data_hash") == card["data_hash"]:
        info["paired"] = paired_with_previous(
            cfg, uri, previous["run_id"], "evaluation/predictions.csv", _read_correct,
            _read_correct(Path(cfg.paths.eval) / "predictions.csv"))
    return info


def _cheapest_rival(models: dict) -> tuple[str, dict] | None:
    """The baseline a product team would ship instead: the most accurate one that is cheaper
    to run than the model."""
    main = models[MAIN]
    cheaper = [(n, m) for n, m in models.items()
               if n not in (MAIN, "majority") and m["seconds_per_1k"] < main["seconds_per_1k"]]
    return max(cheaper, key=lambda item: item[1]["acc"]) if cheaper else None


def _verdict(run: dict, card: dict, result: dict, previous: dict | None) -> dict:
    models = {name: result["models"][name] for name in result["order"]}
    main = models[MAIN]
    low, high = main["acc_ci"]
    positive, negative = card["class_names"][1], card["class_names"][0]
    trained = run.get("trainable_parameters", run["parameters"])
    sentences = [
        f"We trained the model '{main['label']}' ({run['parameters']:,} parameters, "
        f"{trained:,} of them updated) on {sum(card['counts']['train'].values()):,} review "
        f"snippets to tell '{positive}' (positive) from '{negative}' (negative) reviews.",
        f"On {result['n_test']:,} held-out snippets it is right {main['acc']:.1%} of the time "
        f"(95% interval {low:.1%} to {high:.1%}); macro F1 {main['f1_macro']:.3f}, ROC-AUC "
        f"{main['roc_auc']:.3f}.",
    ]
    better = True
    parts = []
    for name, other in models.items():
        if name == MAIN:
            continue
        gap = other["model_minus_this"]
        better = better and gap["low"] > 0
        clear = "clear" if gap["low"] > 0 or gap["high"] < 0 else "not clear"
        parts.append(f"{other['label']} {other['acc']:.1%} ({points(gap['difference'])} for "
                     f"the model, 95% interval {points(gap['low'])} to {points(gap['high'])}; "
                     f"{clear})")
    sentences.append("Against the baselines on the same test snippets: " + "; ".join(parts) + ".")
    rival = _cheapest_rival(models)
    if rival:
        name, other = rival
        gap = other["model_minus_this"]
        ratio = main["seconds_per_1k"] / max(other["seconds_per_1k"], 1e-9)
        worth = ("Fine-tuning pays for itself wherever a few points of accuracy matter more "
                 "than this compute" if gap["low"] > 0 else
                 f"The extra cost buys no clear gain here: {other['label']} is the better buy")
        sentences.append(
            f"Is it worth its cost? The best cheaper model, {other['label']}, needs "
            f"{other['seconds_per_1k']:.2f} s per 1,000 predictions on this CPU; this model "
            f"needs {main['seconds_per_1k']:.2f} s ({ratio:,.0f}x) for "
            f"{points(gap['difference'])} of accuracy. {worth}.")
    worse = False
    if previous is None:
        sentences.append(FIRST_RUN)
    elif previous["paired"]:
        diff = previous["paired"]
        better_than_last, worse, words = judgement(diff)
        better = better and not worse
        sentences.append(
            f"Against the previous run ({previous['model']} '{previous['name']}', "
            f"{previous['acc']:.1%}) on the same test snippets it is {points(diff['difference'])}"
            f" (95% interval {points(diff['low'])} to {points(diff['high'])}): {words}.")
    else:
        sentences.append(f"The previous run ({previous['model']} '{previous['name']}') scored "
                         f"{previous['acc']:.1%} on different data, so the comparison is "
                         "indicative only.")
    return {"sentences": sentences, "better": better, "worse": worse}


def _comparison(result: dict, previous: dict | None) -> dict:
    def seconds(value) -> str:
        return f"{value:,.0f} s" if value else "–"

    rows = []
    for name in result["order"]:
        m = result["models"][name]
        label = f"This run: {m['label']}" if name == MAIN else m["label"]
        trained = m.get("trainable_parameters")
        rows.append([label, f"{m['acc']:.1%}", f"{m['acc_ci'][0]:.1%} – {m['acc_ci'][1]:.1%}",
                     f"{m['f1_macro']:.3f}", f"{m['roc_auc']:.3f}", f"{m['ece']:.3f}",
                     seconds(m.get("train_seconds")), f"{m['seconds_per_1k']:.2f} s",
                     f"{trained:,}" if trained else "–"])
    if previous:
        low, high = previous["ci"]
        rows.insert(1, [f"Previous run ({previous['model']} '{previous['name']}')",
                        f"{previous['acc']:.1%}",
                        f"{low:.1%} – {high:.1%}" if low is not None else "–",
                        "–", "–", "–", "–", "–", "–"])
    return table(["Model", "Accuracy", "95% interval", "Macro F1", "ROC-AUC", "ECE",
                  "Training time", "Per 1k predictions", "Trained parameters"], rows)


def _training_note(run: dict, cfg: DictConfig) -> str:
    history = run["history"]
    if not history:
        return "A closed-form fit: no epochs, no learning curve."
    best = max(history, key=lambda h: h["val_acc"])
    speed = run.get("train_tokens_per_second")
    return (f"Training ran {len(history)} epoch(s) in {run['train_seconds']:.0f} s"
            + (f" ({speed:,.0f} tokens/s)" if speed else "")
            + f"; validation accuracy peaked at {best['val_acc']:.1%} in epoch {best['epoch']}. "
            f"The checkpoint with the lowest validation loss is the model evaluated here. "
            f"Warm-up over {cfg.train.warmup_fraction:.0%} of the steps, then linear decay.")


def _slice_note(slices: list[dict], label: str) -> str:
    filled = [s for s in slices if s[MAIN] is not None]
    worst = min(filled, key=lambda s: s[MAIN])
    best = max(filled, key=lambda s: s[MAIN])
    return (f"{label} does best on snippets of {best['bucket']} ({best[MAIN]:.1%}) and worst on "
            f"{worst['bucket']} ({worst[MAIN]:.1%}): a gap of "
            f"{(best[MAIN] - worst[MAIN]) * 100:.1f} points (buckets with fewer texts have "
            "wider error bars).")


def _cost_rows(run: dict, main: dict, result: dict) -> list[tuple[str, str]]:
    rows = [("Parameters (updated in training)",
             f"{run['parameters']:,} ({run.get('trainable_parameters', run['parameters']):,})"),
            ("Model size (float32)", f"{run['parameters'] * 4 / 1e6:.1f} MB"),
            ("Training time", f"{run['train_seconds']:.0f} s over {run['epochs_trained']} "
                              "epoch(s)")]
    if run.get("train_tokens_per_second"):
        rows.append(("Training throughput", f"{run['train_tokens_per_second']:,.0f} tokens/s "
                                            f"({run['train_samples_per_second']:,.1f} texts/s)"))
    rows += [("Peak memory in training", f"{run['peak_memory_mb']:,.0f} MB"),
             ("Prediction cost on this CPU", f"{main['seconds_per_1k']:.2f} s per 1,000 texts "
                                             f"(timed on {result['cost_texts']:,} test texts)")]
    return rows


def _data_card_rows(card: dict) -> list[tuple[str, str]]:
    removed = ", ".join(f"{k}: {v:,}" for k, v in card["removed"].items() if v)
    length = card["length"]
    rows = [
        ("Source", card["source"]),
        ("Licence", card["licence"]),
        ("Texts", f"{card['raw_rows']:,} rows → {card['kept']:,} kept"),
        ("Per split and class", "; ".join(
            f"{split} " + ", ".join(f"{c} {n:,}" for c, n in counts.items())
            for split, counts in card["counts"].items())),
        ("Class balance (train)", ", ".join(
            f"{c} {n / sum(card['counts']['train'].values()):.1%}"
            for c, n in card["counts"]["train"].items())),
        ("Length (words)", f"min {length['words_min']}, median {length['words_median']:.0f}, "
                           f"90th percentile {length['words_p90']:.0f}, max "
                           f"{length['words_max']}"),
        ("Length buckets", ", ".join(f"{k}: {v:,}" for k, v in length["buckets"].items())),
        ("Split", f"{card['split']['method']}, seed {card['split']['seed']}, val "
                  f"{card['split']['val_fraction']:.0%}, test "
                  f"{card['split']['test_fraction']:.0%}"),
        ("Removed", removed or "nothing"),
    ]
    if "test_groups_also_in_train" in card:
        rows.append(("Test snippets about a movie also reviewed in train",
                     f"{card['test_groups_also_in_train']:,}"))
    rows.append(("Data hash", card["data_hash"]))
    return rows


def summarize(cfg: DictConfig, path: Path) -> str:
    result = read_evaluation(cfg)
    models = result["models"]
    others = ", ".join(f"{models[n]['label']} {models[n]['acc']:.1%}" for n in result["order"]
                       if n != MAIN)
    return (f"[bold]{cfg.pipeline.name}: {models[MAIN]['label']} {models[MAIN]['acc']:.1%} vs "
            f"{others}[/bold]\nreport: {path.resolve()}")
