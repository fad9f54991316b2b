"""report (lm): is the language model better than simple baselines and than the last run, by how
much, what does its text look like, and what did it cost."""

from __future__ import annotations

import math
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
    table,
    write_report,
)

METRIC = "test/perplexity"


def report(cfg: DictConfig) -> Path:
    run = read_run(cfg)
    card = read_data_card(cfg)
    result = read_evaluation(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    tags = tracking.client(uri).get_run(run["run_id"]).data.tags
    earlier = tracking.previous_runs(uri, cfg.logger.experiment_name, run["run_id"], METRIC)
    previous = _compare_with_previous(cfg, uri, earlier[0], card) if earlier else None

    model, unigram, bigram = result["model"], result["unigram"], result["bigram"]
    pngs = {
        "learning_curves": figures.lm_learning_curves(
            run["history"], {"bigram": bigram["loss"], "unigram": unigram["loss"]}),
        "perplexity": figures.perplexity_bars([
            (f"This run ({tags.get('forgeml.model', 'model')})", model["perplexity"],
             model["perplexity_ci"]),
            *([(f"Previous run '{previous['name']}'", previous["perplexity"],
                previous["ci"])] if previous and previous["ci"][0] is not None else []),
            ("Bigram baseline", bigram["perplexity"], bigram["perplexity_ci"]),
            ("Unigram baseline", unigram["perplexity"], unigram["perplexity_ci"]),
        ]),
    }
    unit = "character" if result["tokenizer"] == "char" else "token"
    context = {
        "title": f"{cfg.pipeline.name}: {tags.get('forgeml.model', 'model')} language model on "
                 f"{card['source']}",
        "verdict": _verdict(cfg, run, card, result, previous, unit),
        "comparison": _comparison(tags, result, previous),
        "training_note": _training_note(run, cfg),
        "samples": [{"prompt": s["prompt"], "temperature": s["temperature"], "text": s["text"]}
                    for s in result["samples"]],
        "sample_note": (f"Sampled from the model, {cfg.evaluate.samples.max_new_tokens} {unit}s "
                        f"per prompt (seed {cfg.evaluate.samples.seed}); lower temperature is "
                        "safer and more repetitive, higher is more varied and less coherent."),
        "quality": [
            ("Test loss", f"{model['loss']:.4f} nats/{unit}"),
            ("Bits per token", f"{model['bits_per_token']:.3f}"),
            ("Bits per character", f"{model['bits_per_char']:.3f}" + (
                "" if unit == "character" else
                f" (= bits per token / {result['chars_per_token']:.3f} characters per token)")),
            ("Test windows", f"{result['n_windows']:,} × {result['block_size']} tokens "
                             f"({result['n_target_tokens']:,} predicted tokens)"),
        ],
        "data_card": _data_card_rows(card),
        "cost": [
            ("Parameters", f"{run['parameters']:,}"),
            ("Model size (float32)", f"{run['parameters'] * 4 / 1e6:.2f} MB"),
            ("Training time", f"{run['train_seconds']:.0f} s for {run['steps_trained']:,} steps"),
            ("Training throughput", f"{run['train_tokens_per_second']:,.0f} tokens/s"),
            ("Generation speed (1 sequence, CPU)",
             f"{result['generation_tokens_per_s']:,.0f} tokens/s"),
        ],
        "history": table(["Run", "Model", "Data", "Test perplexity"], [[
            r["run_name"] or r["run_id"][:8], r["tags"].get("forgeml.model", "?"),
            r["params"].get("data.name", "?"), f"{r['metrics'][METRIC]:.3f}"]
            for r in earlier]),
        "lineage": lineage(cfg, run, tags, uri),
    }
    return write_report(cfg, run, uri, "lm", context, pngs)


def _read_window_nll(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=1, ndmin=1)


def _compare_with_previous(cfg: DictConfig, uri: str, previous: dict, card: dict) -> dict:
    """Paired bootstrap over the same test windows when data and context length match."""
    metrics = previous["metrics"]
    info = {"name": previous["run_name"] or previous["run_id"][:8],
            "model": previous["tags"].get("forgeml.model", "?"),
            "perplexity": metrics[METRIC],
            "ci": (metrics.get("test/perplexity_ci_low"), metrics.get("test/perplexity_ci_high")),
            "paired": None}
    same_data = previous["tags"].get("forgeml.data_hash") == card["data_hash"]
    same_windows = previous["params"].get("model.block_size") == str(cfg.model.block_size)
    if same_data and same_windows:
        # Their loss minus ours per window: > 0 means this run predicts better.
        info["paired"] = paired_with_previous(
            cfg, uri, previous["run_id"], "evaluation/window_nll.csv", _read_window_nll,
            _read_window_nll(Path(cfg.paths.eval) / "window_nll.csv"), lower_is_better=True)
    return info


def _ratio(nats: float) -> str:
    """A loss difference in nats as how many times higher the other perplexity is."""
    return f"{math.exp(nats):.2f}×"


def _verdict(cfg, run, card, result, previous, unit: str) -> dict:
    model, bigram, unigram = result["model"], result["bigram"], result["unigram"]
    low, high = model["perplexity_ci"]
    test_titles = ", ".join(card["titles"].get(w, w) for w in card["works"]["test"])
    sentences = [
        f"We trained a {run['parameters']:,}-parameter GPT to predict the next {unit} of "
        f"{card['source']} text, on {card['counts']['train']:,} {unit}s from "
        f"{len(card['works']['train'])} works.",
        f"On works it never saw ({test_titles}) its perplexity is {model['perplexity']:.2f} "
        f"(95% interval {low:.2f} to {high:.2f}): at each {unit} it is as unsure as a pick among "
        f"{model['perplexity']:.1f} equally likely {unit}s; that is {model['bits_per_char']:.2f} "
        "bits per character.",
    ]
    gap = bigram["vs_model"]  # bigram loss minus model loss, per window
    clear = gap["low"] > 0
    baselines = (f"A bigram model (the next {unit} from the previous one alone) scores "
                 f"{bigram['perplexity']:.2f} and a unigram model ({unit} frequencies) "
                 f"{unigram['perplexity']:.2f}")
    if gap["difference"] > 0:
        sentences.append(
            f"{baselines}: the bigram's perplexity is {_ratio(gap['difference'])} the model's "
            f"(95% interval {_ratio(gap['low'])} to {_ratio(gap['high'])}; "
            f"{'a clear win for the model' if clear else 'not a clear win for the model'}).")
    else:
        sentences.append(
            f"{baselines}: the model is worse than the bigram baseline (its perplexity is "
            f"{_ratio(-gap['difference'])} the bigram's); it needs more training steps or a "
            "different configuration before it is useful.")
    better, worse = clear, False
    if previous is None:
        sentences.append(FIRST_RUN)
    elif previous["paired"]:
        diff = previous["paired"]
        better, worse, words = judgement(diff)
        sentences.append(
            f"Against the previous run ('{previous['name']}', perplexity "
            f"{previous['perplexity']:.2f}) on the same test windows, its loss is "
            f"{diff['difference']:+.4f} nats/{unit} lower (95% interval {diff['low']:+.4f} to "
            f"{diff['high']:+.4f}): {words}.")
    else:
        sentences.append(
            f"The previous run ('{previous['name']}') had perplexity "
            f"{previous['perplexity']:.2f} on different test data or context length, so the "
            "comparison is indicative only.")
    return {"sentences": sentences, "better": better, "worse": worse}


def _comparison(tags, result, previous) -> dict:
    def row(name: str, metrics: dict) -> list[str]:
        low, high = metrics["perplexity_ci"]
        return [name, f"{metrics['perplexity']:.3f}", f"{low:.3f} – {high:.3f}",
                f"{metrics['bits_per_char']:.3f}"]

    rows = [row(f"This run ({tags.get('forgeml.model', 'model')})", result["model"])]
    if previous:
        low, high = previous["ci"]
        rows.append([f"Previous run '{previous['name']}'", f"{previous['perplexity']:.3f}",
                     f"{low:.3f} – {high:.3f}" if low is not None else "–", "–"])
    rows.append(row("Bigram baseline", result["bigram"]))
    rows.append(row("Unigram baseline", result["unigram"]))
    return table(["Model", "Test perplexity", "95% interval", "Bits per character"], rows)


def _training_note(run: dict, cfg: DictConfig) -> str:
    history = [h for h in run["history"] if math.isfinite(h["val_loss"])]
    if not history:
        return "No validation loss was recorded."
    best = min(history, key=lambda h: h["val_loss"])
    last = history[-1]
    gap = last["val_loss"] - last["train_loss"]
    fit = ("validation loss is close to training loss, so it is not memorising the training text"
           if gap < 0.1 else f"validation loss is {gap:.2f} nats above training loss: it is "
           "starting to memorise the training text (more dropout or data would help)")
    still = " and was still falling" if best is last else ""
    return (f"Training ran {run['steps_trained']:,} steps of {cfg.train.batch_size} × "
            f"{cfg.model.block_size} tokens; validation loss was lowest ({best['val_loss']:.3f}) "
            f"at step {best['step']:,}{still}; that checkpoint is the model evaluated here. "
            f"At the end, {fit}.")


def _data_card_rows(card: dict) -> list[tuple[str, str]]:
    def works(split: str) -> str:
        names = [card["titles"].get(w, w) for w in card["works"][split]]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        return (f"{len(names)} works, {card['chars'][split]:,} characters, "
                f"{card['counts'][split]:,} tokens: {shown}")

    tokenizer = card["tokenizer"]
    return [
        ("Source", card["source"]),
        ("Origin", card["origin"]),
        ("Licence", card["licence"]),
        ("Tokenizer", f"{tokenizer['kind']}, vocabulary {tokenizer['vocab_size']:,} "
                      "(fitted on the train split only)"),
        ("Split", card["split"]["protocol"]),
        ("Train", works("train")),
        ("Validation", works("val")),
        ("Test", works("test")),
        ("Characters unseen in train", ", ".join(
            f"{k}: {v:,}" for k, v in card["unseen_chars"].items())),
        ("Cleaning removed", f"{card['removed']['empty_works']} empty works"),
        ("Data hash", card["data_hash"]),
    ]


def summarize(cfg: DictConfig, path: Path) -> str:
    result = read_evaluation(cfg)
    model, bigram = result["model"], result["bigram"]
    return (f"[bold]{cfg.pipeline.name}: test perplexity {model['perplexity']:.3f} vs bigram "
            f"{bigram['perplexity']:.3f}[/bold]\nreport: {path.resolve()}")
