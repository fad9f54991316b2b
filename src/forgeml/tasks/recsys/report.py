"""report (recsys): does the recommender put what users chose next into their top K more often
than popularity and matrix factorisation, and than the last run; for whom; at what cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_evaluation, read_run
from forgeml.ranking_metrics import hit_rate
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


def metric_name(k: int) -> str:
    return f"test/hr_at_{k}"


def report(cfg: DictConfig) -> Path:
    run = read_run(cfg)
    card = read_data_card(cfg)
    result = read_evaluation(cfg)
    k = result["k"]
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    tags = tracking.client(uri).get_run(run["run_id"]).data.tags
    earlier = tracking.previous_runs(uri, cfg.logger.experiment_name, run["run_id"],
                                     metric_name(k))
    previous = _compare_with_previous(cfg, uri, earlier[0], card, k) if earlier else None
    model_name = tags.get("forgeml.model", "model")

    scorers = {model_name: "model", "popularity": "popularity", "matrix factorisation": "mf"}
    pngs = {
        "ranking_curves": figures.ranking_curves(
            result["curve_ks"], {label: {"hr": result[key]["hr_curve"],
                                         "ndcg": result[key]["ndcg_curve"]}
                                 for label, key in scorers.items()}, k),
        "learning_curves": figures.recsys_learning_curves(run["history"], k),
        "slices": figures.slice_bars(
            [{**s, model_name: s["model"], "matrix factorisation": s["mf"]}
             for s in result["slices"]], [model_name, "popularity", "matrix factorisation"],
            f"HR@{k} by how active the user is (higher is better)"),
    }
    context = {
        "title": f"{cfg.pipeline.name}: {model_name} recommender on {card['source']}",
        "verdict": _verdict(cfg, run, card, result, previous, model_name),
        "comparison": _comparison(result, previous, model_name),
        "training_note": _training_note(run, k),
        "slices": table(["Users", "How many", f"{model_name} HR@{k}", f"Popularity HR@{k}",
                         f"MF HR@{k}"], [
            [s["bucket"], s["users"], f"{s['model']:.1%}", f"{s['popularity']:.1%}",
             f"{s['mf']:.1%}"] for s in result["slices"]]),
        "slice_note": _slice_note(result["slices"], model_name),
        "full_ranking": table(["Model", f"HR@{k}", f"NDCG@{k}"], [
            [label, f"{result['full_ranking'][key]['hr']:.1%}",
             f"{result['full_ranking'][key]['ndcg']:.3f}"] for label, key in scorers.items()])
        if "full_ranking" in result else None,
        "examples": result["examples"],
        "k": k,
        "candidates": result["num_negatives"] + 1,
        "data_card": _data_card_rows(card),
        "cost": [
            ("Parameters", f"{run['parameters']:,}"),
            ("Model size (float32)", f"{run['parameters'] * 4 / 1e6:.2f} MB"),
            ("Training time", f"{run['train_seconds']:.0f} s over {run['epochs_trained']} epochs"),
            ("Training throughput", f"{run['train_pairs_per_second']:,.0f} user-item pairs/s"),
        ],
        "history": table(["Run", "Model", "Data", f"Test HR@{k}"], [[
            r["run_name"] or r["run_id"][:8], r["tags"].get("forgeml.model", "?"),
            r["params"].get("data.split.protocol", "?"),
            f"{r['metrics'][metric_name(k)]:.1%}"] for r in earlier]),
        "lineage": lineage(cfg, run, tags, uri),
    }
    return write_report(cfg, run, uri, "recsys", context, pngs)


def _read_model_hits(path: Path, k: int) -> np.ndarray:
    ranks = np.loadtxt(path, delimiter=",", skiprows=1, usecols=2, ndmin=1)
    return hit_rate(ranks, k)


def _compare_with_previous(cfg: DictConfig, uri: str, previous: dict, card: dict, k: int
                           ) -> dict:
    info = {"name": previous["run_name"] or previous["run_id"][:8],
            "model": previous["tags"].get("forgeml.model", "?"),
            "hr": previous["metrics"][metric_name(k)],
            "ci": (previous["metrics"].get(f"test/hr_at_{k}_ci_low"),
                   previous["metrics"].get(f"test/hr_at_{k}_ci_high")), "paired": None}
    if previous["tags"].get("forgeml.data_hash") == card["data_hash"]:
        info["paired"] = paired_with_previous(
            cfg, uri, previous["run_id"], "evaluation/ranks.csv",
            lambda path: _read_model_hits(path, k),
            _read_model_hits(Path(cfg.paths.eval) / "ranks.csv", k))
    return info


def _verdict(cfg, run, card, result, previous, model_name: str) -> dict:
    k, model = result["k"], result["model"]
    low, high = model["hr_ci"]
    sentences = [
        f"We trained a {model_name} recommender ({run['parameters']:,} parameters) on "
        f"{card['counts']['train']:,} interactions of {card['users']:,} users with "
        f"{card['items']:,} items ({card['source']}).",
        f"For {result['n_test']:,} held-out choices, the item the user actually picked next is "
        f"in the model's top {k} {model['hr']:.1%} of the time (95% interval {low:.1%} to "
        f"{high:.1%}), when it ranks that item among {result['num_negatives']} random items "
        "the user never touched.",
    ]
    better = True
    for key, label in (("popularity", "Recommending the most popular items"),
                       ("mf", "Matrix factorisation (PureSVD)")):
        base, gap = result[key], result[key]["vs_model"]
        clear = gap["low"] > 0 or gap["high"] < 0
        better = better and gap["low"] > 0
        sentences.append(
            f"{label} gets {base['hr']:.1%}: the model is {points(gap['difference'])} "
            f"{'better' if gap['difference'] >= 0 else 'worse'} (95% interval "
            f"{points(gap['low'])} to {points(gap['high'])}; "
            f"{'a clear difference' if clear else 'not a clear difference'}).")
    if "full_ranking" in result:
        full = result["full_ranking"]
        sentences.append(
            f"Ranked against the whole catalogue instead (the harder, real-product setting), the "
            f"next choice is in the top {k} for {full['model']['hr']:.1%} of users "
            f"(popularity {full['popularity']['hr']:.1%}, matrix factorisation "
            f"{full['mf']['hr']:.1%}).")
    worse = False
    if previous is None:
        sentences.append(FIRST_RUN)
    elif previous["paired"]:
        diff = previous["paired"]
        better, worse, words = judgement(diff)
        sentences.append(
            f"Against the previous run ({previous['model']} '{previous['name']}', "
            f"{previous['hr']:.1%}) on the same held-out choices it is "
            f"{points(diff['difference'])} (95% interval {points(diff['low'])} to "
            f"{points(diff['high'])}): {words}.")
    else:
        sentences.append(
            f"The previous run ({previous['model']} '{previous['name']}') scored "
            f"{previous['hr']:.1%} on a different split, so the comparison is indicative only.")
    return {"sentences": sentences, "better": better, "worse": worse}


def _comparison(result, previous, model_name: str) -> dict:
    k = result["k"]

    def row(label: str, m: dict) -> list[str]:
        return [label, f"{m['hr']:.1%}", f"{m['hr_ci'][0]:.1%} – {m['hr_ci'][1]:.1%}",
                f"{m['ndcg']:.3f}"]

    rows = [row(f"This run ({model_name})", result["model"])]
    if previous:
        low, high = previous["ci"]
        rows.append([f"Previous run ({previous['model']} '{previous['name']}')",
                     f"{previous['hr']:.1%}",
                     f"{low:.1%} – {high:.1%}" if low is not None else "–", "–"])
    rows.append(row("Popularity baseline", result["popularity"]))
    rows.append(row("Matrix factorisation baseline", result["mf"]))
    return table(["Model", f"HR@{k}", "95% interval", f"NDCG@{k}"], rows)


def _training_note(run: dict, k: int) -> str:
    history = run["history"]
    best = max(history, key=lambda h: h["val_ndcg"])
    stop = (f"stopped early after {len(history)} epochs because validation NDCG@{k} had "
            "stopped improving" if run["stopped_early"] else f"ran all {len(history)} epochs")
    return (f"Training {stop}; negatives were re-drawn every epoch. The checkpoint with the best "
            f"validation NDCG@{k} (epoch {best['epoch']}: HR@{k} {best['val_hr']:.1%}) is the "
            "model evaluated here.")


def _slice_note(slices: list[dict], model_name: str) -> str:
    values = [s["model"] for s in slices if s["users"]]
    worst = min((s for s in slices if s["users"]), key=lambda s: s["model"])
    best = max((s for s in slices if s["users"]), key=lambda s: s["model"])
    return (f"{model_name} serves users with {best['bucket']} best ({best['model']:.1%}) and "
            f"users with {worst['bucket']} worst ({worst['model']:.1%}): a gap of "
            f"{(max(values) - min(values)) * 100:.1f} points. Heavy users have seen more of the "
            "catalogue, so their next choice is likely harder to guess.")


def _data_card_rows(card: dict) -> list[tuple[str, str]]:
    removed = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in card["removed"].items())
    per_user = card["train_interactions_per_user"]
    return [
        ("Source", card["source"]),
        ("Origin", card["origin"]),
        ("Licence", card["licence"]),
        ("Interactions", f"{card['raw_count']:,} raw → " + ", ".join(
            f"{k} {v:,}" for k, v in card["counts"].items())),
        ("Users / items", f"{card['users']:,} / {card['items']:,} (density "
                          f"{card['density']:.1%})"),
        ("Positives", card["implicit"]),
        ("Split", card["split"]["protocol"].replace("_", " ")
         + (f", cutoff {card['split']['cutoff']}" if card["split"]["cutoff"] else "")
         + f"; {card['num_negatives']} sampled negatives per held-out item (seed "
           f"{card['split']['seed']}), frozen at prepare"),
        ("Time range", "; ".join(f"{k} {a} to {b}" for k, (a, b) in card["time_range"].items())),
        ("Train interactions per user", f"min {per_user['min']}, median {per_user['median']:.0f}"
                                        f", max {per_user['max']}"),
        ("Cleaning removed", removed or "nothing"),
        ("Data hash", card["data_hash"]),
    ]


def summarize(cfg: DictConfig, path: Path) -> str:
    result = read_evaluation(cfg)
    k = result["k"]
    return (f"[bold]{cfg.pipeline.name}: HR@{k} {result['model']['hr']:.1%} vs popularity "
            f"{result['popularity']['hr']:.1%}, MF {result['mf']['hr']:.1%}[/bold]\n"
            f"report: {path.resolve()}")
