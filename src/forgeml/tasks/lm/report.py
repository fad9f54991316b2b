"""report (lm): is the language model better than simple baselines and than the last run, by how
much, what does its text look like, and what did it cost."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml.reporting import figures
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import Headline, ReportContext, ReportSections, Rows, Verdict


def read_window_nll(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=1, ndmin=1)


def _ratio(nats: float) -> str:
    """A loss difference in nats as how many times higher the other perplexity is."""
    return f"{math.exp(nats):.2f}×"


class LMReport(ReportSections):
    template = "lm"

    def headline(self, cfg: DictConfig) -> Headline:
        # Their loss minus ours per window: > 0 means this run predicts better.
        return Headline("test/perplexity", "window_nll.csv", read_window_nll,
                        lower_is_better=True)

    def comparable(self, ctx: ReportContext, earlier: dict) -> bool:
        """Paired over the same test windows: same data and the same context length."""
        return (super().comparable(ctx, earlier) and earlier["params"].get("model.block_size")
                == str(ctx.cfg.model.block_size))

    def _unit(self, ctx: ReportContext) -> str:
        return "character" if ctx.result["tokenizer"] == "char" else "token"

    def title(self, ctx: ReportContext) -> str:
        return f"{ctx.model_name} language model on {ctx.card['source']}"

    def verdict(self, ctx: ReportContext) -> Verdict:
        run, card, result, unit = ctx.run, ctx.card, ctx.result, self._unit(ctx)
        model, bigram, unigram = result["model"], result["bigram"], result["unigram"]
        low, high = model["perplexity_ci"]
        test_titles = ", ".join(card["titles"].get(w, w) for w in card["works"]["test"])
        sentences = [
            f"We trained a {run['parameters']:,}-parameter GPT to predict the next {unit} of "
            f"{card['source']} text, on {card['counts']['train']:,} {unit}s from "
            f"{len(card['works']['train'])} works.",
            f"On works it never saw ({test_titles}) its perplexity is {model['perplexity']:.2f} "
            f"({ctx.level} interval {low:.2f} to {high:.2f}): at each {unit} it is as unsure as "
            f"a pick among {model['perplexity']:.1f} equally likely {unit}s; that is "
            f"{model['bits_per_char']:.2f} bits per character.",
        ]
        gap = bigram["vs_model"]  # bigram loss minus model loss, per window
        clear = gap["low"] > 0
        baselines = (f"A bigram model (the next {unit} from the previous one alone) scores "
                     f"{bigram['perplexity']:.2f} and a unigram model ({unit} frequencies) "
                     f"{unigram['perplexity']:.2f}")
        if gap["difference"] > 0:
            sentences.append(
                f"{baselines}: the bigram's perplexity is {_ratio(gap['difference'])} the "
                f"model's ({ctx.level} interval {_ratio(gap['low'])} to {_ratio(gap['high'])}; "
                f"{'a clear win for the model' if clear else 'not a clear win for the model'}).")
        else:
            sentences.append(
                f"{baselines}: the model is worse than the bigram baseline (its perplexity is "
                f"{_ratio(-gap['difference'])} the bigram's); it needs more training steps or a "
                "different configuration before it is useful.")
        sentence, better, worse = ctx.against_previous(
            "test windows", fmt=".2f", difference=lambda d: (
                f"{d['difference']:+.4f} nats/{unit} lower in loss ({ctx.level} interval "
                f"{d['low']:+.4f} to {d['high']:+.4f})"))
        sentences.append(sentence)
        return Verdict(sentences, better or (ctx.previous is None and clear), worse)

    def comparison(self, ctx: ReportContext) -> dict:
        def row(name: str, metrics: dict) -> list[str]:
            return [name, f"{metrics['perplexity']:.3f}",
                    ctx.interval(metrics["perplexity_ci"], ".3f"),
                    f"{metrics['bits_per_char']:.3f}"]

        rows = [row(f"This run ({ctx.model_name})", ctx.result["model"])]
        if ctx.previous:
            rows.append([f"Previous run '{ctx.previous.name}'", f"{ctx.previous.value:.3f}",
                         ctx.interval(ctx.previous.ci, ".3f"), "–"])
        rows.append(row("Bigram baseline", ctx.result["bigram"]))
        rows.append(row("Unigram baseline", ctx.result["unigram"]))
        return table(["Model", "Test perplexity", f"{ctx.level} interval", "Bits per character"],
                     rows)

    def training_note(self, ctx: ReportContext) -> str:
        run, cfg = ctx.run, ctx.cfg
        history = [h for h in run["history"] if math.isfinite(h["val_loss"])]
        if not history:
            return "No validation loss was recorded."
        best = min(history, key=lambda h: h["val_loss"])
        last = history[-1]
        gap = last["val_loss"] - last["train_loss"]
        fit = ("validation loss is close to training loss, so it is not memorising the training "
               "text" if gap < 0.1 else f"validation loss is {gap:.2f} nats above training "
               "loss: it is starting to memorise the training text (more dropout or data would "
               "help)")
        still = " and was still falling" if best is last else ""
        return (f"Training ran {run['steps_trained']:,} steps of {cfg.train.batch_size} × "
                f"{cfg.model.block_size} tokens; validation loss was lowest "
                f"({best['val_loss']:.3f}) at step {best['step']:,}{still}; that checkpoint is "
                f"the model evaluated here. At the end, {fit}.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card

        def works(split: str) -> str:
            names = [card["titles"].get(w, w) for w in card["works"][split]]
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more"
                                            if len(names) > 6 else "")
            return (f"{len(names)} works, {card['chars'][split]:,} characters, "
                    f"{card['counts'][split]:,} tokens: {shown}")

        tokenizer = card["tokenizer"]
        return [
            ("Tokenizer", f"{tokenizer['kind']}, vocabulary {tokenizer['vocab_size']:,} "
                          "(fitted on the train split only)"),
            ("Split", card["split"]["protocol"]),
            ("Train", works("train")),
            ("Validation", works("val")),
            ("Test", works("test")),
            ("Characters unseen in train", ", ".join(
                f"{k}: {v:,}" for k, v in card["unseen_chars"].items())),
            ("Cleaning removed", f"{card['removed']['empty_works']} empty works"),
        ]

    def cost(self, ctx: ReportContext) -> Rows:
        run = ctx.run
        return [
            ("Training time", f"{run['train_seconds']:.0f} s for {run['steps_trained']:,} steps"),
            ("Training throughput", f"{run['train_tokens_per_second']:,.0f} tokens/s"),
            ("Generation speed (1 sequence, CPU)",
             f"{ctx.result['generation_tokens_per_s']:,.0f} tokens/s"),
        ]

    def history(self, ctx: ReportContext):
        return ["Data", "Test perplexity"], lambda r: [
            r["params"].get("data.name", "?"), f"{r['metrics']['test/perplexity']:.3f}"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        result, previous = ctx.result, ctx.previous
        bigram, unigram = result["bigram"], result["unigram"]
        return {
            "learning_curves": figures.lm_learning_curves(
                ctx.run["history"], {"bigram": bigram["loss"], "unigram": unigram["loss"]}),
            "perplexity": figures.perplexity_bars([
                (f"This run ({ctx.model_name})", result["model"]["perplexity"],
                 result["model"]["perplexity_ci"]),
                *([(f"Previous run '{previous.name}'", previous.value, previous.ci)]
                  if previous and previous.ci[0] is not None else []),
                ("Bigram baseline", bigram["perplexity"], bigram["perplexity_ci"]),
                ("Unigram baseline", unigram["perplexity"], unigram["perplexity_ci"]),
            ], ctx.level),
        }

    def sections(self, ctx: ReportContext) -> dict:
        result, samples, unit = ctx.result, ctx.cfg.evaluate.samples, self._unit(ctx)
        model = result["model"]
        return {
            "samples": [{"prompt": s["prompt"], "temperature": s["temperature"],
                         "text": s["text"]} for s in result["samples"]],
            "sample_note": (f"Sampled from the model, {samples.max_new_tokens} {unit}s per "
                            f"prompt (seed {samples.seed}); lower temperature is safer and more "
                            "repetitive, higher is more varied and less coherent."),
            "quality": [
                ("Test loss", f"{model['loss']:.4f} nats/{unit}"),
                ("Bits per token", f"{model['bits_per_token']:.3f}"),
                ("Bits per character", f"{model['bits_per_char']:.3f}" + (
                    "" if unit == "character" else
                    f" (= bits per token / {result['chars_per_token']:.3f} characters per "
                    "token)")),
                ("Test windows", f"{result['n_windows']:,} × {result['block_size']} tokens "
                                 f"({result['n_target_tokens']:,} predicted tokens)"),
            ],
        }

    def summary(self, ctx: ReportContext) -> str:
        model, bigram = ctx.result["model"], ctx.result["bigram"]
        return (f"test perplexity {model['perplexity']:.3f} vs bigram "
                f"{bigram['perplexity']:.3f}")


SECTIONS = LMReport()
