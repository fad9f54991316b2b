"""report (recsys): does the recommender put what users chose next into their top K more often
than popularity and matrix factorisation, and than the last run; for whom; at what cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml.ranking_metrics import hit_rate
from forgeml.reporting import figures, privacy
from forgeml.reporting.render import table
from forgeml.reporting.skeleton import (
    Headline,
    ReportContext,
    ReportSections,
    Rows,
    Verdict,
    points,
)

BASELINES = (("popularity", "Recommending the most popular items"),
             ("mf", "Matrix factorisation (PureSVD)"))


class RecsysReport(ReportSections):
    template = "recsys"

    def headline(self, cfg: DictConfig) -> Headline:
        k = cfg.evaluate.k

        def read_hits(path: Path) -> np.ndarray:
            return hit_rate(np.loadtxt(path, delimiter=",", skiprows=1, usecols=2, ndmin=1), k)

        return Headline(f"test/hr_at_{k}", "ranks.csv", read_hits)

    def _scorers(self, ctx: ReportContext) -> dict[str, str]:
        return {ctx.model_name: "model", "popularity": "popularity",
                "matrix factorisation": "mf"}

    def title(self, ctx: ReportContext) -> str:
        return f"{ctx.model_name} recommender on {ctx.card['source']}"

    def verdict(self, ctx: ReportContext) -> Verdict:
        run, card, result = ctx.run, ctx.card, ctx.result
        k, model = result["k"], result["model"]
        low, high = model["hr_ci"]
        sentences = [
            f"We trained a {ctx.model_name} recommender ({run['parameters']:,} parameters) on "
            f"{card['counts']['train']:,} interactions of {card['users']:,} users with "
            f"{card['items']:,} items ({card['source']}).",
            f"For {result['n_test']:,} held-out choices, the item the user actually picked next "
            f"is in the model's top {k} {model['hr']:.1%} of the time ({ctx.level} interval "
            f"{low:.1%} to {high:.1%}), when it ranks that item among "
            f"{result['num_negatives']} random items the user never touched.",
        ]
        if "privacy_epsilon" in run:
            sentences.append(privacy.verdict_sentence(run, privacy.INTERACTIONS))
        beats_baselines = True
        for key, label in BASELINES:
            base, gap = result[key], result[key]["vs_model"]
            clear = gap["low"] > 0 or gap["high"] < 0
            beats_baselines = beats_baselines and gap["low"] > 0
            sentences.append(
                f"{label} gets {base['hr']:.1%}: the model is {points(gap['difference'])} "
                f"{'better' if gap['difference'] >= 0 else 'worse'} ({ctx.level} interval "
                f"{points(gap['low'])} to {points(gap['high'])}; "
                f"{'a clear difference' if clear else 'not a clear difference'}).")
        if "full_ranking" in result:
            full = result["full_ranking"]
            sentences.append(
                f"Ranked against the whole catalogue instead (the harder, real-product "
                f"setting), the next choice is in the top {k} for {full['model']['hr']:.1%} of "
                f"users (popularity {full['popularity']['hr']:.1%}, matrix factorisation "
                f"{full['mf']['hr']:.1%}).")
        sentence, better, worse = ctx.against_previous("held-out choices")
        sentences.append(sentence)
        paired = ctx.previous is not None and ctx.previous.paired is not None
        return Verdict(sentences, better if paired else beats_baselines, worse)

    def comparison(self, ctx: ReportContext) -> dict:
        result, previous, k = ctx.result, ctx.previous, ctx.result["k"]

        def row(label: str, m: dict) -> list[str]:
            return [label, f"{m['hr']:.1%}", ctx.interval(m["hr_ci"]), f"{m['ndcg']:.3f}"]

        rows = [row(f"This run ({ctx.model_name})", result["model"])]
        if previous:
            rows.append([f"Previous run ({previous.model} '{previous.name}')",
                         f"{previous.value:.1%}", ctx.interval(previous.ci), "–"])
        rows.append(row("Popularity baseline", result["popularity"]))
        rows.append(row("Matrix factorisation baseline", result["mf"]))
        return table(["Model", f"HR@{k}", f"{ctx.level} interval", f"NDCG@{k}"], rows)

    def training_note(self, ctx: ReportContext) -> str:
        run, k = ctx.run, ctx.result["k"]
        history = run["history"]
        best = max(history, key=lambda h: h["val_ndcg"])
        stop = (f"stopped early after {len(history)} epochs because validation NDCG@{k} had "
                "stopped improving" if run["stopped_early"]
                else f"ran all {len(history)} epochs")
        return (f"Training {stop}; negatives were re-drawn every epoch. The checkpoint with the "
                f"best validation NDCG@{k} (epoch {best['epoch']}: HR@{k} "
                f"{best['val_hr']:.1%}) is the model evaluated here.")

    def data_card(self, ctx: ReportContext) -> Rows:
        card = ctx.card
        removed = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in card["removed"].items())
        per_user = card["train_interactions_per_user"]
        return [
            ("Interactions", f"{card['raw_count']:,} raw → " + ", ".join(
                f"{k} {v:,}" for k, v in card["counts"].items())),
            ("Users / items", f"{card['users']:,} / {card['items']:,} (density "
                              f"{card['density']:.1%})"),
            ("Positives", card["implicit"]),
            ("Split", card["split"]["protocol"].replace("_", " ")
             + (f", cutoff {card['split']['cutoff']}" if card["split"]["cutoff"] else "")
             + f"; {card['num_negatives']} sampled negatives per held-out item (seed "
               f"{card['split']['seed']}), frozen at prepare"),
            ("Time range", "; ".join(f"{k} {a} to {b}"
                                     for k, (a, b) in card["time_range"].items())),
            ("Train interactions per user", f"min {per_user['min']}, median "
                                            f"{per_user['median']:.0f}, max {per_user['max']}"),
            ("Cleaning removed", removed or "nothing"),
            ("Identifiers", _identifiers(card)),
        ]

    def cost(self, ctx: ReportContext) -> Rows:
        run = ctx.run
        return [
            ("Training time", f"{run['train_seconds']:.0f} s over {run['epochs_trained']} "
                              "epochs"),
            ("Training throughput", f"{run['train_pairs_per_second']:,.0f} user-item pairs/s"),
        ]

    def history(self, ctx: ReportContext):
        metric = self.headline(ctx.cfg).metric
        return ["Data", f"Test HR@{ctx.result['k']}"], lambda r: [
            r["params"].get("data.split.protocol", "?"), f"{r['metrics'][metric]:.1%}"]

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        result, k, name = ctx.result, ctx.result["k"], ctx.model_name
        return {
            "ranking_curves": figures.ranking_curves(
                result["curve_ks"], {label: {"hr": result[key]["hr_curve"],
                                             "ndcg": result[key]["ndcg_curve"]}
                                     for label, key in self._scorers(ctx).items()}, k),
            "learning_curves": figures.recsys_learning_curves(ctx.run["history"], k),
            "slices": figures.slice_bars(
                [{**s, name: s["model"], "matrix factorisation": s["mf"]}
                 for s in result["slices"]], [name, "popularity", "matrix factorisation"],
                f"HR@{k} by how active the user is (higher is better)"),
        }

    def sections(self, ctx: ReportContext) -> dict:
        result, k, name = ctx.result, ctx.result["k"], ctx.model_name
        return {
            "slices": table(["Users", "How many", f"{name} HR@{k}", f"Popularity HR@{k}",
                             f"MF HR@{k}"], [
                [s["bucket"], s["users"], f"{s['model']:.1%}", f"{s['popularity']:.1%}",
                 f"{s['mf']:.1%}"] for s in result["slices"]]),
            "slice_note": _slice_note(result["slices"], name),
            "full_ranking": table(["Model", f"HR@{k}", f"NDCG@{k}"], [
                [label, f"{result['full_ranking'][key]['hr']:.1%}",
                 f"{result['full_ranking'][key]['ndcg']:.3f}"]
                for label, key in self._scorers(ctx).items()])
            if "full_ranking" in result else None,
            "examples": result["examples"],
            "privacy": privacy.section(ctx.run, result, ctx.level, privacy.INTERACTIONS),
            "k": k,
            "candidates": result["num_negatives"] + 1,
        }

    def summary(self, ctx: ReportContext) -> str:
        result = ctx.result
        return (f"HR@{result['k']} {result['model']['hr']:.1%} vs popularity "
                f"{result['popularity']['hr']:.1%}, MF {result['mf']['hr']:.1%}")


def _slice_note(slices: list[dict], model_name: str) -> str:
    filled = [s for s in slices if s["users"]]
    worst = min(filled, key=lambda s: s["model"])
    best = max(filled, key=lambda s: s["model"])
    return (f"{model_name} serves users with {best['bucket']} best ({best['model']:.1%}) and "
            f"users with {worst['bucket']} worst ({worst['model']:.1%}): a gap of "
            f"{(best['model'] - worst['model']) * 100:.1f} points. Heavy users have seen more "
            "of the catalogue, so their next choice is likely harder to guess.")


SECTIONS = RecsysReport()


def _identifiers(card: dict) -> str:
    anon = card.get("anonymisation") or {}
    ids = (f"pseudonymous (keyed hash, key id {anon['key_id']}): no raw user or item id is in "
           "the prepared data, the model or this report" if anon.get("pseudonymised_ids") else
           "raw ids as in the source (data.anonymise.pseudonymise_ids=true replaces them)")
    if "min_group_size" not in anon:
        return ids
    return (f"{ids}; rare groups (k = {anon['min_group_size']}): "
            f"{anon['users_below_k_interactions']:,} users with fewer than k interactions, "
            f"{anon['items_below_k_users']:,} items chosen by fewer than k users, the easiest "
            "to single out")
