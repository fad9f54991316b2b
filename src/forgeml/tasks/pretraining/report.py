"""report (pretraining): how many labels does pre-training save? The verdict in plain words at
the fewest labels (gain over the identical network from scratch, with its interval, and how many
labels scratch needs to catch up), the label-efficiency curve, the reconstructions as evidence
of what the encoder learned, and the cost. The layout and earlier runs are the shared
skeleton's."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from forgeml.reporting import figures
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import (
    Headline,
    ReportContext,
    ReportSections,
    Rows,
    Verdict,
    points,
)
from forgeml.tasks.pretraining.evaluate import PER_EXAMPLE_FILE, read_per_example
from forgeml.tasks.pretraining.pictures import reconstruction_picture
from forgeml.tasks.pretraining.prepare import subset_key
from forgeml.tasks.pretraining.pretrain import GRIDS_FILE

TARGET_GAIN = 0.05  # what pre-training must add at the fewest labels to be worth its cost


def _subsets(card: dict) -> list[dict]:
    return sorted(card["label_subsets"].values(), key=lambda s: s["fraction"])


def _fewest(cfg: DictConfig) -> str:
    return subset_key(min(cfg.labels.fractions))


class PretrainingReport(ReportSections):
    template = "pretraining"

    def headline(self, cfg: DictConfig) -> Headline:
        name = f"pretrained-{_fewest(cfg)}"
        return Headline(f"test/acc_{name}", PER_EXAMPLE_FILE,
                        lambda path: read_per_example(path, name))

    def title(self, ctx: ReportContext) -> str:
        return f"masked-autoencoder pre-training on {ctx.card['source']}"

    def _models(self, ctx: ReportContext) -> dict[tuple[str, float], dict]:
        return {(m["model"], m["fraction"]): m for m in ctx.result["models"]}

    def verdict(self, ctx: ReportContext) -> Verdict:
        r, run, card = ctx.result, ctx.run, ctx.card
        by = self._models(ctx)
        fewest = min(m["fraction"] for m in r["models"])
        key = subset_key(fewest)
        counts = ", ".join(f"{s['count']:,}" for s in _subsets(card))
        sentences = [
            f"We pre-trained a Vision Transformer encoder ({run['parameters']:,} parameters) "
            f"as a masked autoencoder on {card['unlabelled_pool']:,} {card['source']} training "
            f"images without their labels ({run['mask_ratio']:.0%} of each image hidden, "
            f"{run['epochs_trained']} epochs, {run['train_seconds'] / 60:.1f} min), then "
            f"fine-tuned it with {counts} "
            "labelled images and compared it with the same network trained from scratch and "
            "with the seed CNN, each given the same steps and augmentation."]
        better = worse = False
        gain = r["differences"].get("pretrained_vs_scratch", {}).get(key)
        pre, scratch = by.get(("pretrained", fewest)), by.get(("scratch", fewest))
        if gain and pre and scratch:
            clear = gain["low"] > 0
            sentences.append(
                f"With {pre['labels']:,} labels, pre-training gains "
                f"{points(gain['difference'])} of test accuracy ({pre['acc']:.1%} vs "
                f"{scratch['acc']:.1%}; {ctx.level} interval {points(gain['low'])} to "
                f"{points(gain['high'])} on the same {r['n_test']:,} test images): "
                + ("a clear gain." if clear else "pre-training hurts here." if gain["high"] < 0
                   else "not a clear difference (the interval includes 0)."))
            better = clear and gain["difference"] >= TARGET_GAIN
            worse = gain["high"] < 0
        match = r.get("scratch_labels_to_match")
        if match and match["labels"] is not None:
            sentences.append({
                "at_most": f"The scratch network already matches it with {match['labels']:,} "
                           "labels: pre-training saves no labels.",
                "interpolated": f"The scratch network needs about {match['labels']:,} labels "
                                f"to reach the same {match['target']:.1%} — "
                                f"{match['labels'] / pre['labels']:.0f}× as many."
                if pre else "",
                "more_than": f"The scratch network does not reach {match['target']:.1%} even "
                             f"with all {match['labels']:,} labels.",
            }.get(match["bound"], ""))
        cnn = by.get(("cnn", fewest))
        vs_cnn = r["differences"].get("pretrained_vs_cnn", {}).get(key)
        if cnn and vs_cnn:
            sentences.append(
                f"Against the seed CNN from scratch ({cnn['acc']:.1%}) it is "
                f"{points(vs_cnn['difference'])} ({ctx.level} interval "
                f"{points(vs_cnn['low'])} to {points(vs_cnn['high'])}).")
        probe = by.get(("probe", fewest))
        if probe:
            sentences.append(
                f"A linear probe on the frozen encoder reaches {probe['acc']:.1%}: "
                + ("the encoder's features alone separate the classes well."
                   if scratch and probe["acc"] >= scratch["acc"] else
                   "its features need fine-tuning to be useful."))
        return Verdict([s for s in sentences if s], better, worse)

    def comparison(self, ctx: ReportContext) -> dict:
        """Test accuracy (interval) per model and number of labels; validation accuracy, which
        chose each checkpoint, in the last column."""
        by = self._models(ctx)
        fractions = sorted({m["fraction"] for m in ctx.result["models"]})
        counts = {m["fraction"]: m["labels"] for m in ctx.result["models"]}
        rows = []
        for kind in dict.fromkeys(m["model"] for m in ctx.result["models"]):
            cells = [by[kind, f] for f in fractions if (kind, f) in by]
            rows.append([cells[0]["label"], *(
                f"{m['acc']:.1%} ({ctx.interval(m['acc_ci'])})" for m in cells),
                " / ".join(f"{m['best_val_acc']:.1%}" for m in cells)])
        return table(["Model", *(f"{f:.0%} labels ({counts[f]:,})" for f in fractions),
                      "Validation accuracy"], rows)

    def training_note(self, ctx: ReportContext) -> str:
        history, run = ctx.run["history"], ctx.run
        first, best = history[0], min(history, key=lambda h: h["val_loss"])
        return (f"Pre-training ran {len(history)} epochs; the reconstruction loss on the hidden "
                f"patches of validation images fell from {first['val_loss']:.3f} after epoch 1 "
                f"to {best['val_loss']:.3f} at epoch {best['epoch']} (the encoder kept). "
                f"Patches are {run['patch_size']}×{run['patch_size']} pixels; the loss compares "
                "each hidden patch with its own normalised pixels, so 1.0 is what predicting "
                "a flat patch scores. Every fine-tuned model kept the checkpoint with the best "
                "validation accuracy; the test split chose nothing.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card
        return [
            ("Images", ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())),
            ("Unlabelled pool (pre-training)", f"{card['unlabelled_pool']:,} training images"),
            ("Labelled subsets (nested, stratified)", "; ".join(
                f"{s['fraction']:.0%}: {s['count']:,} ({min(s['class_counts'])}–"
                f"{max(s['class_counts'])} per class)"
                for s in _subsets(card))),
        ]

    def cost(self, ctx: ReportContext) -> Rows:
        run, models = ctx.run, ctx.result["models"]
        return [
            ("Decoder parameters (pre-training only)", f"{run['decoder_parameters']:,}"),
            ("Pre-training time", f"{run['train_seconds'] / 60:.1f} min "
                                  f"({run['train_samples_per_second']:,.0f} images/s)"),
            ("Fine-tuning time, all models", f"{sum(m['train_seconds'] for m in models) / 60:.1f}"
                                             " min"),
        ]

    def history(self, ctx: ReportContext):
        metric = self.headline(ctx.cfg).metric
        gain = f"test/gain_{_fewest(ctx.cfg)}"
        return ["Fine-tuned, fewest labels", "Gain over scratch"], lambda r: [
            f"{r['metrics'][metric]:.1%}" if metric in r["metrics"] else "–",
            points(r["metrics"][gain]) if gain in r["metrics"] else "–"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        saved = torch.load(Path(ctx.cfg.paths.models) / GRIDS_FILE, weights_only=True)
        grids = saved["grids"]
        best = min(ctx.run["history"], key=lambda h: h["val_loss"])["epoch"]
        series: dict[str, list] = {}
        for m in ctx.result["models"]:
            series.setdefault(m["label"], []).append((m["labels"], m["acc"], m["acc_ci"]))
        rows = ["original", f"visible ({1 - ctx.run['mask_ratio']:.0%})", "reconstructed"]

        def picture(epoch: int, title: str) -> bytes:
            return figures.labelled_grid(reconstruction_picture(grids[epoch - 1], ctx.card),
                                         rows, title)

        return {
            "reconstructions": picture(best, f"Validation images, encoder of epoch {best}"),
            "first_epoch": picture(1, "The same images after epoch 1"),
            "label_efficiency": figures.label_efficiency(series),
        }

    def sections(self, ctx: ReportContext) -> dict:
        r = ctx.result
        rows = []
        for name, label in (("pretrained_vs_scratch", "pre-trained − scratch"),
                            ("probe_vs_scratch", "linear probe − scratch"),
                            ("pretrained_vs_cnn", "pre-trained − seed CNN")):
            for m in sorted((m for m in r["models"] if m["model"] == "pretrained"),
                            key=lambda m: m["fraction"]):
                d = r["differences"].get(name, {}).get(subset_key(m["fraction"]))
                if d is None:
                    continue
                rows.append([label, f"{m['fraction']:.0%} ({m['labels']:,})",
                             points(d["difference"]),
                             f"{points(d['low'])} to {points(d['high'])}"])
        return {"differences": table(["Comparison", "Labels (count)", "Difference",
                                      f"{ctx.level} interval"], rows),
                "mask_ratio": ctx.run["mask_ratio"]}

    def summary(self, ctx: ReportContext) -> str:
        r = ctx.result
        gains = r["differences"].get("pretrained_vs_scratch", {})
        return "pre-training gain over scratch: " + ", ".join(
            f"{key} {points(d['difference'])} ({d['low'] * 100:+.1f} to {d['high'] * 100:+.1f})"
            for key, d in gains.items())


SECTIONS = PretrainingReport()
