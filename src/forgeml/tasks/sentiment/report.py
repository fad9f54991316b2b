"""report (sentiment): is the fine-tuned transformer better than the cheap baselines, the same
network without pretraining, and the last run; by how much, for which reviews, at what cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml.reporting import figures, realtime
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import (
    Headline,
    ReportContext,
    ReportSections,
    Rows,
    Verdict,
    points,
)
from forgeml.tasks.sentiment.predictor import MAIN


def read_correct(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=4, ndmin=1)


def _models(ctx: ReportContext) -> dict[str, dict]:
    return {name: ctx.result["models"][name] for name in ctx.result["order"]}


def _cheapest_rival(models: dict) -> tuple[str, dict] | None:
    """The baseline a product team would ship instead: the most accurate one that is cheaper
    to run than the model."""
    main = models[MAIN]
    cheaper = [(n, m) for n, m in models.items()
               if n not in (MAIN, "majority") and m["seconds_per_1k"] < main["seconds_per_1k"]]
    return max(cheaper, key=lambda item: item[1]["acc"]) if cheaper else None


class SentimentReport(ReportSections):
    template = "sentiment"

    def headline(self, cfg: DictConfig) -> Headline:
        return Headline("test/acc", "predictions.csv", read_correct)

    def title(self, ctx: ReportContext) -> str:
        return f"{_models(ctx)[MAIN]['label']} on {ctx.card['name']}"

    def verdict(self, ctx: ReportContext) -> Verdict:
        run, card, result = ctx.run, ctx.card, ctx.result
        models = _models(ctx)
        main = models[MAIN]
        low, high = main["acc_ci"]
        positive, negative = card["class_names"][1], card["class_names"][0]
        trained = run.get("trainable_parameters", run["parameters"])
        sentences = [
            f"We trained the model '{main['label']}' ({run['parameters']:,} parameters, "
            f"{trained:,} of them updated) on {sum(card['counts']['train'].values()):,} review "
            f"snippets to tell '{positive}' (positive) from '{negative}' (negative) reviews.",
            f"On {result['n_test']:,} held-out snippets it is right {main['acc']:.1%} of the "
            f"time ({ctx.level} interval {low:.1%} to {high:.1%}); macro F1 "
            f"{main['f1_macro']:.3f}, ROC-AUC {main['roc_auc']:.3f}.",
        ]
        better, parts = True, []
        for name, other in models.items():
            if name == MAIN:
                continue
            gap = other["model_minus_this"]
            better = better and gap["low"] > 0
            clear = "clear" if gap["low"] > 0 or gap["high"] < 0 else "not clear"
            parts.append(f"{other['label']} {other['acc']:.1%} ({points(gap['difference'])} "
                         f"for the model, {ctx.level} interval {points(gap['low'])} to "
                         f"{points(gap['high'])}; {clear})")
        sentences.append("Against the baselines on the same test snippets: " + "; ".join(parts)
                         + ".")
        rival = _cheapest_rival(models)
        if rival:
            _, other = rival
            gap = other["model_minus_this"]
            ratio = main["seconds_per_1k"] / max(other["seconds_per_1k"], 1e-9)
            worth = ("Fine-tuning pays for itself wherever a few points of accuracy matter more "
                     "than this compute" if gap["low"] > 0 else
                     f"The extra cost buys no clear gain here: {other['label']} is the better "
                     "buy")
            sentences.append(
                f"Is it worth its cost? The best cheaper model, {other['label']}, needs "
                f"{other['seconds_per_1k']:.2f} s per 1,000 predictions on this CPU; this model "
                f"needs {main['seconds_per_1k']:.2f} s ({ratio:,.0f}x) for "
                f"{points(gap['difference'])} of accuracy. {worth}.")
        sentence, _, worse = ctx.against_previous("test snippets")
        sentences.append(sentence)
        return Verdict(sentences, better and not worse, worse)

    def comparison(self, ctx: ReportContext) -> dict:
        def seconds(value) -> str:
            return f"{value:,.0f} s" if value else "–"

        rows = []
        for name, m in _models(ctx).items():
            label = f"This run: {m['label']}" if name == MAIN else m["label"]
            trained = m.get("trainable_parameters")
            rows.append([label, f"{m['acc']:.1%}", ctx.interval(m["acc_ci"]),
                         f"{m['f1_macro']:.3f}", f"{m['roc_auc']:.3f}", f"{m['ece']:.3f}",
                         seconds(m.get("train_seconds")), f"{m['seconds_per_1k']:.2f} s",
                         f"{trained:,}" if trained else "–"])
        if ctx.previous:
            previous = ctx.previous
            rows.insert(1, [f"Previous run ({previous.model} '{previous.name}')",
                            f"{previous.value:.1%}", ctx.interval(previous.ci),
                            "–", "–", "–", "–", "–", "–"])
        return table(["Model", "Accuracy", f"{ctx.level} interval", "Macro F1", "ROC-AUC",
                      "ECE", "Training time", "Per 1k predictions", "Trained parameters"], rows)

    def training_note(self, ctx: ReportContext) -> str:
        run = ctx.run
        history = run["history"]
        if not history:
            return "A closed-form fit: no epochs, no learning curve."
        best = max(history, key=lambda h: h["val_acc"])
        speed = run.get("train_tokens_per_second")
        return (f"Training ran {len(history)} epoch(s) in {run['train_seconds']:.0f} s"
                + (f" ({speed:,.0f} tokens/s)" if speed else "")
                + f"; validation accuracy peaked at {best['val_acc']:.1%} in epoch "
                f"{best['epoch']}. The checkpoint with the lowest validation loss is the model "
                f"evaluated here. Warm-up over {ctx.cfg.train.warmup_fraction:.0%} of the steps, "
                "then linear decay.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card
        removed = ", ".join(f"{k}: {v:,}" for k, v in card["removed"].items() if v)
        length = card["length"]
        rows = [
            ("Texts", f"{card['raw_rows']:,} rows → {card['kept']:,} kept"),
            ("Per split and class", "; ".join(
                f"{split} " + ", ".join(f"{c} {n:,}" for c, n in counts.items())
                for split, counts in card["counts"].items())),
            ("Class balance (train)", ", ".join(
                f"{c} {n / sum(card['counts']['train'].values()):.1%}"
                for c, n in card["counts"]["train"].items())),
            ("Length (words)", f"min {length['words_min']}, median "
                               f"{length['words_median']:.0f}, 90th percentile "
                               f"{length['words_p90']:.0f}, max {length['words_max']}"),
            ("Length buckets", ", ".join(f"{k}: {v:,}" for k, v in length["buckets"].items())),
            ("Split", f"{card['split']['method']}, seed {card['split']['seed']}, val "
                      f"{card['split']['val_fraction']:.0%}, test "
                      f"{card['split']['test_fraction']:.0%}"),
            ("Removed", removed or "nothing"),
        ]
        if "test_groups_also_in_train" in card:
            rows.append(("Test snippets about a movie also reviewed in train",
                         f"{card['test_groups_also_in_train']:,}"))
        if "anonymisation" in card:
            anon = card["anonymisation"]
            rows.append(("Personal data masked", ", ".join(
                f"{kind}: {n:,}" for kind, n in anon["pii_masked"].items())
                + f" (in {anon['texts_with_pii']:,} texts), replaced by <KIND> placeholders"))
            if anon["groups"]:
                rows.append(("Rare groups", f"{anon['groups_below_k']:,} of {anon['groups']:,} "
                             f"groups have fewer than {anon['min_group_size']} texts: the "
                             "easiest to single out"))
        return rows

    def cost(self, ctx: ReportContext) -> Rows:
        run, main = ctx.run, _models(ctx)[MAIN]
        rows = [("Training time", f"{run['train_seconds']:.0f} s over {run['epochs_trained']} "
                                  "epoch(s)")]
        if run.get("train_tokens_per_second"):
            rows.append(("Training throughput",
                         f"{run['train_tokens_per_second']:,.0f} tokens/s "
                         f"({run['train_samples_per_second']:,.1f} texts/s)"))
        rows += [("Peak memory in training", f"{run['peak_memory_mb']:,.0f} MB"),
                 ("Prediction cost on this CPU", f"{main['seconds_per_1k']:.2f} s per 1,000 "
                                                 f"texts (timed on {ctx.result['cost_texts']:,} "
                                                 "test texts)")]
        return rows

    def history(self, ctx: ReportContext):
        return ["Test accuracy", "Macro F1"], lambda r: [
            f"{r['metrics']['test/acc']:.1%}",
            f"{r['metrics'].get('test/f1_macro', float('nan')):.3f}"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        result, models = ctx.result, _models(ctx)
        histories = {models[MAIN]["label"]: ctx.run["history"]}
        histories.update({models[n]["label"]: h for n, h in _baseline_histories(ctx.cfg).items()
                          if h and n in models})
        rivals = {n: m for n, m in models.items() if n != "majority"}
        return {
            "accuracy_vs_cost": figures.accuracy_vs_cost(
                [(m["label"], m["acc"], tuple(m["acc_ci"]), m["seconds_per_1k"])
                 for m in rivals.values()], ctx.level),
            "learning_curves": figures.validation_curves(histories),
            "confusion_matrix": figures.confusion_matrix(result["confusion_matrix"],
                                                         result["class_names"]),
            "calibration": figures.reliability_diagram(result["reliability"]),
            "slices": figures.slice_bars(
                [{**s, **{m["label"]: s[n] for n, m in rivals.items()}}
                 for s in result["slices"]],
                [m["label"] for m in rivals.values()],
                "Accuracy by review length (higher is better)", count_key="texts"),
            **realtime.figures_of(ctx.cfg),
        }

    def sections(self, ctx: ReportContext) -> dict:
        result, models = ctx.result, _models(ctx)
        main = models[MAIN]
        top = result["reliability"][-1] if result["reliability"] else None
        return {
            "slices": table(["Review length", "Test texts",
                             *[m["label"] for m in models.values()]],
                            [[s["bucket"], s["texts"], *[
                                f"{s[n]:.1%}" if s[n] is not None else "–" for n in models]]
                             for s in result["slices"]]),
            "slice_note": _slice_note(result["slices"], main["label"]),
            "errors": result["confident_errors"],
            "calibration_note": (
                f"Expected calibration error {main['ece']:.3f}: when the model says it is "
                f"{int(round(top['confidence'] * 100))}% sure, it is right "
                f"{top['accuracy']:.0%} of the time (most confident bin)." if top else ""),
            "realtime": realtime.section_of(ctx.cfg, ctx.level),
        }

    def summary(self, ctx: ReportContext) -> str:
        models = ctx.result["models"]
        others = ", ".join(f"{models[n]['label']} {models[n]['acc']:.1%}"
                           for n in ctx.result["order"] if n != MAIN)
        return f"{models[MAIN]['label']} {models[MAIN]['acc']:.1%} vs {others}"


def _baseline_histories(cfg: DictConfig) -> dict[str, list[dict]]:
    if not cfg.get("baselines"):
        return {}
    path = Path(cfg.paths.baselines) / "baselines.json"
    records = json.loads(path.read_text()) if path.is_file() else {}
    return {name: r.get("history", []) for name, r in records.items()}


def _slice_note(slices: list[dict], label: str) -> str:
    filled = [s for s in slices if s[MAIN] is not None]
    worst = min(filled, key=lambda s: s[MAIN])
    best = max(filled, key=lambda s: s[MAIN])
    return (f"{label} does best on snippets of {best['bucket']} ({best[MAIN]:.1%}) and worst on "
            f"{worst['bucket']} ({worst[MAIN]:.1%}): a gap of "
            f"{(best[MAIN] - worst[MAIN]) * 100:.1f} points (buckets with fewer texts have "
            "wider error bars).")


SECTIONS = SentimentReport()
