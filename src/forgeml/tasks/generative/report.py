"""report (generative): are the samples any good, does every class come out, is it copying the
training set, in plain words with the pictures as evidence. The layout and the search for
earlier runs are the shared skeleton's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml.reporting import figures
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import Headline, ReportContext, ReportSections, Rows, Verdict
from forgeml.tasks.generative.evaluate import SHOWN_FILE
from forgeml.tasks.generative.images import grid_array
from forgeml.tasks.generative.network import GRIDS_FILE

# The targets a usable generator meets (the verdict's colour): a quarter of the epoch-1 FID,
# conditional samples recognised >= 80% of the time, every class >= half its share.
FID_FRACTION_OF_EPOCH1 = 0.25
MIN_CONDITIONAL_ACC = 0.80
MIN_CLASS_SHARE = 0.5
STRIP_EPOCHS = 5


def _no_per_example(path: Path) -> np.ndarray:
    raise NotImplementedError("FID is a property of a sample set, not of test examples")


class GenerativeReport(ReportSections):
    template = "generative"

    def headline(self, cfg: DictConfig) -> Headline:
        return Headline("test/fid", "evaluation.json", _no_per_example, lower_is_better=True)

    def comparable(self, ctx: ReportContext, earlier: dict) -> bool:
        return False  # runs are compared by their FID intervals (verdict)

    def title(self, ctx: ReportContext) -> str:
        kind = "class-conditional " if ctx.result["conditional"] else ""
        return f"{kind}{ctx.model_name} on {ctx.card['source']}"

    def verdict(self, ctx: ReportContext) -> Verdict:
        run, card, r = ctx.run, ctx.card, ctx.result
        refs, names = r["references"], list(ctx.cfg.data.class_names)
        low, high = r["fid_ci"]
        fraction = r["fid"] / refs["epoch1"]["fid"] if refs["epoch1"]["fid"] else float("nan")
        sentences = [
            f"We trained a {'class-conditional ' if r['conditional'] else ''}DCGAN "
            f"({run['parameters']:,} generator parameters) on {card['counts']['train']:,} "
            f"{card['source']} training images for {run['epochs_trained']} epochs.",
            f"Its images are at a distance (FID) of {r['fid']:.2f} from the real test images "
            f"({ctx.level} interval {low:.2f} to {high:.2f}), measured in the features of a "
            f"classifier trained on real images. For scale: real training images score "
            f"{refs['real_train']['fid']:.2f} (the best possible), uniform noise "
            f"{refs['noise']['fid']:.1f}, and this generator after one epoch "
            f"{refs['epoch1']['fid']:.2f}; " + (
                f"training cut that to {fraction:.0%}." if fraction < 1 else
                "it is no closer to real images than after one epoch."),
        ]
        ok = fraction <= FID_FRACTION_OF_EPOCH1 and r["fid"] < refs["noise"]["fid"]
        per_class = r["per_class"]
        if r["conditional"]:
            c_low, c_high = r["conditional_acc_ci"]
            weakest = int(np.nanargmin([row["accuracy"] for row in per_class]))
            sentences.append(
                f"Asked for a class, its samples are recognised as that class "
                f"{r['conditional_acc']:.1%} of the time ({ctx.level} interval {c_low:.1%} to "
                f"{c_high:.1%}); the same classifier recognises real test images "
                f"{r['classifier_test_acc']:.1%} of the time"
                + (" (samples that are easier to recognise than real images are typical of "
                   "their class rather than as varied)" if r["conditional_acc"] >
                   r["classifier_test_acc"] else "")
                + f". The hardest class to draw is {names[weakest]} "
                f"({per_class[weakest]['accuracy']:.0%}).")
            ok = ok and r["conditional_acc"] >= MIN_CONDITIONAL_ACC
        rarest = int(np.argmin([row["share"] for row in per_class]))
        share = r["min_class_share"]
        sentences.append(
            f"Every class appears in its samples: the rarest, {names[rarest]}, at {share:.2f}× "
            "its expected share (no mode collapse)." if share >= MIN_CLASS_SHARE else
            f"Class {names[rarest]} gets only {share:.2f}× its expected share of samples: the "
            "generator is dropping it (mode collapse).")
        ok = ok and share >= MIN_CLASS_SHARE
        memo = r["memorisation"]
        copied = memo["pixels"]["copy_share"]
        expected = memo["quantile"]
        sentences.append(
            f"{copied:.1%} of {memo['samples']:,} samples are closer to a training image than "
            f"{1 - expected:.0%} of real unseen images are (about {expected:.0%} is expected "
            "when nothing is copied): "
            + ("no sign that it reproduces its training images." if copied <= 2 * expected
               else "some samples are near-copies of training images; see the pairs below."))
        previous_sentence, better, worse = self._against_previous(ctx)
        sentences.append(previous_sentence)
        if ctx.previous is None:
            better, worse = ok, r["fid"] >= refs["noise"]["fid"] or share < MIN_CLASS_SHARE
        return Verdict(sentences, better, worse)

    def _against_previous(self, ctx: ReportContext) -> tuple[str, bool, bool]:
        prev, r = ctx.previous, ctx.result
        if prev is None:
            return ("This is the first evaluated run of this pipeline, so there is no earlier "
                    "generator to compare with."), False, False
        low, high = r["fid_ci"]
        p_low, p_high = prev.ci
        who = f"the previous run ({prev.model} '{prev.name}', FID {prev.value:.2f})"
        if p_low is None:
            return f"Against {who}: no interval was recorded for it.", False, False
        better, worse = high < p_low, low > p_high
        words = ("clearly better (the intervals do not overlap)" if better else
                 "clearly worse (the intervals do not overlap)" if worse else
                 "not clearly different (the intervals overlap)")
        return (f"Against {who}, {ctx.level} interval {p_low:.2f} to {p_high:.2f}, this run is "
                f"{words}."), better, worse

    def comparison(self, ctx: ReportContext) -> dict:
        r, prev = ctx.result, ctx.previous
        refs = r["references"]
        rows = [[f"This run ({ctx.model_name})", f"{r['fid']:.2f}", ctx.interval(r["fid_ci"],
                                                                                 ".2f"),
                 f"{r['kid']:.4f}"]]
        if prev:
            rows.append([f"Previous run ({prev.model} '{prev.name}')", f"{prev.value:.2f}",
                         ctx.interval(prev.ci, ".2f"), "–"])
        for name, key in (("Real training images (the floor)", "real_train"),
                          ("This generator after epoch 1", "epoch1"),
                          ("Uniform noise", "noise")):
            rows.append([name, f"{refs[key]['fid']:.2f}", "–", f"{refs[key]['kid']:.4f}"])
        return table(["Images", "FID (lower is better)", f"{ctx.level} interval", "KID"], rows)

    def training_note(self, ctx: ReportContext) -> str:
        history = ctx.run["history"]
        best = min((h for h in history if math.isfinite(h["val_fid"])),
                   key=lambda h: h["val_fid"])
        last = history[-1]
        balance = ("the discriminator is winning clearly (it rates real images "
                   f"{last['d_real']:.2f} on average), a sign the generator may stall"
                   if last["d_real"] > 0.9 else
                   f"the two networks stay balanced (the discriminator rates real images "
                   f"{last['d_real']:.2f} on average)")
        return (f"Training ran {len(history)} epochs; the validation FID was lowest at epoch "
                f"{best['epoch']} ({best['val_fid']:.2f}), and that generator (the moving "
                f"average of its weights) is the one evaluated here. In the last epoch "
                f"{balance}.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card
        return [
            ("Images", ", ".join(f"{k} {v:,}" for k, v in card["counts"].items())),
            ("Per class (train)", ", ".join(
                f"{n}: {c}" for n, c in zip(card["class_names"], card["class_counts"]["train"],
                                            strict=True))),
        ]

    def cost(self, ctx: ReportContext) -> Rows:
        run = ctx.run
        return [
            ("Discriminator parameters", f"{run['discriminator_parameters']:,}"),
            ("Training time", f"{run['train_seconds']:.1f} s over {run['epochs_trained']} "
                              "epochs"),
            ("Training throughput", f"{run['train_samples_per_second']:,.0f} images/s"),
        ]

    def history(self, ctx: ReportContext):
        return ["Data", "Test FID", "Recognised as asked"], lambda r: [
            r["params"].get("data.name", "?"), f"{r['metrics']['test/fid']:.2f}",
            f"{r['metrics']['test/conditional_acc']:.1%}"
            if "test/conditional_acc" in r["metrics"] else "–"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        cfg, r = ctx.cfg, ctx.result
        names = list(cfg.data.class_names)
        rows = cfg.data.num_classes if r["conditional"] else 1
        saved = torch.load(Path(cfg.paths.models) / GRIDS_FILE, weights_only=True)
        epochs, grids = saved["epochs"].tolist(), saved["grids"].numpy()
        picks = sorted(set(np.linspace(0, len(epochs) - 1, STRIP_EPOCHS).round().astype(int)))
        shown = torch.load(Path(cfg.paths.eval) / SHOWN_FILE, weights_only=True)
        per_class = shown["per_class"].numpy()
        distances = r["memorisation"]["closest_pixel_distances"]
        out = {
            "strip": figures.image_strip(
                [grid_array(grids[i], rows) for i in picks], [f"epoch {epochs[i]}" for i in picks],
                "The same noise and classes over training"),
            "curves": figures.gan_curves(ctx.run["history"]),
            "per_class_samples": figures.labelled_grid(
                grid_array(per_class, rows), names if r["conditional"] else ["samples"],
                "Samples by requested class (final generator)"),
            "nearest": figures.image_pairs(
                shown["nearest_samples"].numpy(), shown["nearest_train"].numpy(),
                [f"d={d:.2f}" for d in distances],
                "Closest samples (top) and their nearest training images (bottom)"),
        }
        if r["conditional"]:
            out["per_class_accuracy"] = figures.class_bars(
                [row["accuracy"] for row in r["per_class"]], names,
                "Samples recognised as the requested class", "share recognised",
                r["classifier_test_acc"], "real test images")
        return out

    def sections(self, ctx: ReportContext) -> dict:
        r, names = ctx.result, list(ctx.cfg.data.class_names)
        memo, diversity = r["memorisation"], r["diversity"]
        return {
            "conditional": r["conditional"],
            "per_class": table(
                ["Class", "Recognised as asked", "FID vs its test images", "Share of samples"],
                [[name, f"{row['accuracy']:.1%}" if r["conditional"] else "–",
                  f"{row['fid']:.2f}", f"{row['share']:.2f}×"]
                 for name, row in zip(names, r["per_class"], strict=True)]),
            "originality": [
                ("Samples matched to their nearest training image", f"{memo['samples']:,}"),
                ("Closer than 95% of real test images (pixels)",
                 f"{memo['pixels']['copy_share']:.1%}"),
                ("Closer than 95% of real test images (features)",
                 f"{memo['features']['copy_share']:.1%}"),
                ("Median distance to nearest training image: samples / real test (pixels)",
                 f"{memo['pixels']['median_sample_distance']:.2f} / "
                 f"{memo['pixels']['median_test_distance']:.2f}"),
                ("Spread of samples vs real test images (mean pairwise feature distance)",
                 f"{diversity['ratio']:.2f}× ({diversity['samples']:.2f} vs "
                 f"{diversity['real_test']:.2f})"),
            ],
            "samples_note": (f"FID and KID compare {r['samples']:,} generated images with the "
                             f"{r['n_test']:,} real test images; the interval is the spread over "
                             f"{r['replicates']} further sets of {r['samples']:,} samples drawn "
                             "with other seeds."),
        }

    def summary(self, ctx: ReportContext) -> str:
        r = ctx.result
        low, high = r["fid_ci"]
        text = f"test FID {r['fid']:.2f} ({ctx.level} CI {low:.2f}-{high:.2f})"
        if r["conditional"]:
            text += f"; samples recognised as asked {r['conditional_acc']:.1%}"
        return text


SECTIONS = GenerativeReport()
