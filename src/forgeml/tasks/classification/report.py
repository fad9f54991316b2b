"""report (classification): a verdict a product manager can act on, with the evidence an
engineer checks. The layout and the comparison with earlier runs are the shared skeleton's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml.data.tensors import load_split
from forgeml.reporting import figures, privacy, realtime
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import (
    Headline,
    ReportContext,
    ReportSections,
    Rows,
    Verdict,
    points,
)


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {"label": table[:, 1].astype(int), "predicted": table[:, 2].astype(int),
            "confidence": table[:, 3]}


def read_correct(path: Path) -> np.ndarray:
    predictions = read_predictions(path)
    return predictions["predicted"] == predictions["label"]


class ClassificationReport(ReportSections):
    template = "classification"

    def headline(self, cfg: DictConfig) -> Headline:
        return Headline("test/acc", "predictions.csv", read_correct)

    def title(self, ctx: ReportContext) -> str:
        return f"{ctx.model_name} on {ctx.card['source']}"

    def verdict(self, ctx: ReportContext) -> Verdict:
        cfg, run, card, result = ctx.cfg, ctx.run, ctx.card, ctx.result
        low, high = result["acc_ci"]
        model = cfg.model["_target_"].rsplit(".", 1)[-1]
        sentences = [
            f"We trained a {model} ({run['parameters']:,} parameters) to tell apart "
            f"{cfg.data.num_classes} classes of {card['source']} images, from "
            f"{card['counts']['train']:,} training examples.",
            f"On {result['n_test']:,} test images it never saw, it is right {result['acc']:.1%} "
            f"of the time ({ctx.level} interval {low:.1%} to {high:.1%}).",
        ]
        if "baseline" in result:
            base, gap = result["baseline"], result["baseline"]["vs_model"]
            clear = gap["low"] > 0 or gap["high"] < 0
            sentences.append(
                f"A simple {base['name']} baseline gets {base['acc']:.1%}: the model is "
                f"{points(gap['difference'])} {'better' if gap['difference'] >= 0 else 'worse'} "
                f"({ctx.level} interval {points(gap['low'])} to {points(gap['high'])}; "
                f"{'a clear difference' if clear else 'not a clear difference'}).")
        if "privacy_epsilon" in run:
            sentences.append(privacy.verdict_sentence(run, privacy.IMAGES))
        sentence, better, worse = ctx.against_previous("test images")
        sentences.append(sentence)
        if ctx.previous is None:
            better = "baseline" not in result or result["baseline"]["vs_model"]["low"] > 0
        return Verdict(sentences, better, worse)

    def comparison(self, ctx: ReportContext) -> dict:
        result, previous = ctx.result, ctx.previous
        rows = [[f"This run ({ctx.model_name})", f"{result['acc']:.1%}",
                 ctx.interval(result["acc_ci"])]]
        if previous:
            rows.append([f"Previous run ({previous.model} '{previous.name}')",
                         f"{previous.value:.1%}", ctx.interval(previous.ci)])
        if "baseline" in result:
            rows.append([f"Baseline ({result['baseline']['name']})",
                         f"{result['baseline']['acc']:.1%}",
                         ctx.interval(result["baseline"]["acc_ci"])])
        return table(["Model", "Test accuracy", f"{ctx.level} interval"], rows)

    def training_note(self, ctx: ReportContext) -> str:
        history = ctx.run["history"]
        best = min(history, key=lambda h: h["val_loss"])
        last = history[-1]
        stop = (f"stopped early after {len(history)} epochs because validation loss had not "
                f"improved for {ctx.cfg.train.early_stopping.patience} epochs"
                if ctx.run["stopped_early"] else f"ran all {len(history)} epochs")
        gap = last["train_acc"] - last["val_acc"]
        fit = ("train and validation accuracy are close, so it is not memorising the training "
               "set" if gap < 0.02 else f"train accuracy is {gap * 100:.1f} points above "
               "validation accuracy: some overfitting")
        return (f"Training {stop}; the checkpoint with the lowest validation loss (epoch "
                f"{best['epoch']}, validation accuracy {best['val_acc']:.1%}) is the model "
                f"evaluated here. In the last epoch {fit}.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card
        removed = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in card["removed"].items())
        return [
            ("Examples", f"{card['raw_count']:,} raw → " + ", ".join(
                f"{k} {v:,}" for k, v in card["counts"].items())),
            ("Split", f"{card['split']['protocol']} (seed {card['split']['seed']})"),
            ("Per class (train)", ", ".join(
                f"{n}: {c}" for n, c in zip(card["class_names"], card["class_counts"]["train"],
                                            strict=True))),
            ("Cleaning removed", removed or "nothing (de-duplication off)"),
        ]

    def cost(self, ctx: ReportContext) -> Rows:
        run, cost = ctx.run, ctx.result["cost"]
        return [
            ("Training time", f"{run['train_seconds']:.1f} s over {run['epochs_trained']} "
                              "epochs"),
            ("Training throughput", f"{run['train_samples_per_second']:,.0f} samples/s"),
            ("Inference latency (1 image, CPU)", f"{cost['latency_ms_single']:.2f} ms"),
            ("Inference throughput (batch 256, CPU)",
             f"{cost['throughput_samples_per_s']:,.0f} images/s"),
        ]

    def history(self, ctx: ReportContext):
        return ["Data", "Test accuracy"], lambda r: [
            r["params"].get("data.name", "?"), f"{r['metrics']['test/acc']:.2%}"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        result, names = ctx.result, list(ctx.cfg.data.class_names)
        return {
            "learning_curves": figures.learning_curves(ctx.run["history"]),
            "confusion_matrix": figures.confusion_matrix(result["confusion_matrix"], names),
            "per_class_f1": figures.per_class_f1(result["per_class"]["f1"], names),
            "misclassified": self._misclassified(ctx, names),
            **realtime.figures_of(ctx.cfg),
        }

    def sections(self, ctx: ReportContext) -> dict:
        result, names = ctx.result, list(ctx.cfg.data.class_names)
        per_class = result["per_class"]
        return {
            "per_class": [{
                "name": name, "precision": f"{p:.3f}", "recall": f"{r:.3f}", "f1": f"{f:.3f}",
                "support": s} for name, p, r, f, s in zip(
                    names, *(per_class[k] for k in ("precision", "recall", "f1", "support")),
                    strict=True)],
            "fairness_note": _fairness_note(names, per_class["f1"]),
            "quality": [
                ("Macro F1", f"{result['f1_macro']:.3f}"),
                ("Macro precision", f"{result['precision_macro']:.3f}"),
                ("Macro recall", f"{result['recall_macro']:.3f}"),
                ("Test loss (cross-entropy)", f"{result['loss']:.4f}"),
                ("Expected calibration error", f"{result['ece']:.3f} (0 = confidence matches "
                                               "accuracy)"),
            ],
            "realtime": realtime.section_of(ctx.cfg, ctx.level),
            "privacy": privacy.section(ctx.run, result, ctx.level),
        }

    def summary(self, ctx: ReportContext) -> str:
        low, high = ctx.result["acc_ci"]
        return (f"test accuracy {ctx.result['acc']:.2%} ({ctx.level} CI {low:.2%}-"
                f"{high:.2%})")

    def _misclassified(self, ctx: ReportContext, names: list[str]) -> bytes:
        predictions = read_predictions(Path(ctx.cfg.paths.eval) / "predictions.csv")
        images, _ = load_split(ctx.cfg.paths.prepared, "test")
        wrong = np.flatnonzero(predictions["predicted"] != predictions["label"])
        # Most confident mistakes first: they are the most telling.
        wrong = wrong[np.argsort(-predictions["confidence"][wrong])][
            :ctx.cfg.evaluate.max_misclassified_shown]
        return figures.misclassified_grid(
            images[wrong].numpy(), [names[i] for i in predictions["label"][wrong]],
            [names[i] for i in predictions["predicted"][wrong]],
            predictions["confidence"][wrong].tolist())


def _fairness_note(names: list[str], f1: list[float]) -> str:
    weakest, strongest = int(np.argmin(f1)), int(np.argmax(f1))
    return (f"Weakest class: {names[weakest]} (F1 {f1[weakest]:.3f}); strongest: "
            f"{names[strongest]} (F1 {f1[strongest]:.3f}). The gap of "
            f"{(f1[strongest] - f1[weakest]) * 100:.1f} points is how unevenly the model serves "
            "different classes.")


SECTIONS = ClassificationReport()
