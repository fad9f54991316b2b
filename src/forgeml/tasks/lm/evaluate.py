"""evaluate (lm): test loss, perplexity and bits per character of the model, a unigram and a
bigram baseline on the same target tokens, paired intervals, and samples from fixed prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_run
from forgeml.bootstrap import level, paired_bootstrap_difference
from forgeml.data.token_stream import check_long_enough, load_tokens
from forgeml.data.tokenizer import load_tokenizer
from forgeml.io import atomic_write_json, atomic_write_text, staged_outputs
from forgeml.lm_metrics import (
    bigram_window_nll,
    model_window_nll,
    perplexity_interval,
    summarize_nll,
    unigram_window_nll,
)
from forgeml.tasks.lm.generate import generate_text
from forgeml.tasks.lm.network import load_network


def evaluate(cfg: DictConfig) -> dict:
    """Write metrics/<p>/test.json and eval/<p>/ (evaluation, per-window losses, samples)."""
    run = read_run(cfg)
    card = read_data_card(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    network = load_network(cfg)
    tokenizer = load_tokenizer(Path(cfg.paths.prepared) / "tokenizer.json")
    vocab, block = card["tokenizer"]["vocab_size"], cfg.model.block_size
    test = load_tokens(cfg.paths.prepared, "test", vocab)
    train = load_tokens(cfg.paths.prepared, "train", vocab)
    check_long_enough(test, block, "test")
    ev = cfg.evaluate
    chars_per_token = card["chars"]["test"] / card["counts"]["test"]

    scores = {
        "model": model_window_nll(network, test, block, ev.eval_batch_size),
        "unigram": unigram_window_nll(train, test, block, vocab),
        "bigram": bigram_window_nll(train, test, block, vocab, ev.bigram_smoothing),
    }
    result: dict = {"n_windows": len(scores["model"]), "block_size": block,
                    "n_target_tokens": len(scores["model"]) * block,
                    "tokenizer": card["tokenizer"]["kind"], "chars_per_token": chars_per_token}
    for name, nll in scores.items():
        result[name] = summarize_nll(nll, chars_per_token)
        result[name]["perplexity_ci"] = perplexity_interval(
            nll, ev.bootstrap_samples, ev.confidence, cfg.seed)
    for name in ("unigram", "bigram"):
        # Baseline loss minus model loss per window: > 0 means the model predicts better.
        result[name]["vs_model"] = paired_bootstrap_difference(
            scores[name], scores["model"], ev.bootstrap_samples, ev.confidence, cfg.seed)

    samples = []
    for i, prompt in enumerate(ev.samples.prompts):
        for temperature in ev.samples.temperatures:
            text, speed = generate_text(network, tokenizer, prompt, ev.samples.max_new_tokens,
                                        temperature, ev.samples.top_k, ev.samples.seed + i)
            samples.append({"prompt": prompt, "temperature": temperature, "text": text,
                            "tokens_per_s": speed})
    result["samples"] = samples
    result["generation_tokens_per_s"] = float(np.median([s["tokens_per_s"] for s in samples])) \
        if samples else 0.0

    model = result["model"]
    headline = {
        "loss": model["loss"], "perplexity": model["perplexity"],
        "perplexity_ci_low": model["perplexity_ci"][0],
        "perplexity_ci_high": model["perplexity_ci"][1],
        "bits_per_token": model["bits_per_token"], "bits_per_char": model["bits_per_char"],
        "unigram_perplexity": result["unigram"]["perplexity"],
        "bigram_perplexity": result["bigram"]["perplexity"],
        "bigram_bits_per_char": result["bigram"]["bits_per_char"],
        "generation_tokens_per_s": result["generation_tokens_per_s"],
    }
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        atomic_write_text(out / "window_nll.csv", "window,model,unigram,bigram\n" + "".join(
            f"{i},{m:.6f},{u:.6f},{b:.6f}\n" for i, (m, u, b) in enumerate(zip(
                scores["model"], scores["unigram"], scores["bigram"], strict=True))))
        atomic_write_json(out / "evaluation.json", result)
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        tracking.log_metrics(uri, run["run_id"], {f"test/{k}": v for k, v in headline.items()})
        tracking.log_artifacts(uri, run["run_id"], [metrics_file, out], "evaluation")
    return result


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    model, bigram = result["model"], result["bigram"]
    low, high = model["perplexity_ci"]
    return (f"test perplexity {model['perplexity']:.3f} ({ci} CI {low:.3f}-{high:.3f}), "
            f"{model['bits_per_char']:.3f} bits/char; bigram {bigram['perplexity']:.3f}, "
            f"unigram {result['unigram']['perplexity']:.3f}")
