"""Language-model metrics on a token stream: per-window negative log-likelihood of the model and of
unigram/bigram count baselines over exactly the same target tokens."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def window_starts(n_tokens: int, block_size: int) -> np.ndarray:
    """Non-overlapping windows: inputs tokens[s:s+T], targets tokens[s+1:s+T+1]."""
    return np.arange(0, n_tokens - block_size, block_size)


def target_positions(n_tokens: int, block_size: int) -> np.ndarray:
    """(windows, T) indices of the target tokens that every scorer is evaluated on."""
    starts = window_starts(n_tokens, block_size)
    return starts[:, None] + 1 + np.arange(block_size)[None, :]


@torch.no_grad()
def model_window_nll(network: torch.nn.Module, tokens: np.ndarray, block_size: int,
                     batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Mean NLL (nats/token) of each window; a window's first target sees one token of context,
    its last sees block_size (the standard non-overlapping evaluation)."""
    network.eval()
    positions = target_positions(len(tokens), block_size)
    out = np.empty(len(positions))
    for start in range(0, len(positions), batch_size):
        rows = positions[start:start + batch_size]
        targets = torch.from_numpy(tokens[rows].astype(np.int64)).to(device)
        inputs = torch.from_numpy(tokens[rows - 1].astype(np.int64)).to(device)
        logits = network(inputs)
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        out[start:start + len(rows)] = nll.mean(dim=1).cpu().numpy()
    return out


def unigram_window_nll(train: np.ndarray, tokens: np.ndarray, block_size: int,
                       vocab_size: int) -> np.ndarray:
    """p(token) from train counts with add-one smoothing."""
    counts = np.bincount(train, minlength=vocab_size).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    positions = target_positions(len(tokens), block_size)
    return -logp[tokens[positions]].mean(axis=1)


def bigram_window_nll(train: np.ndarray, tokens: np.ndarray, block_size: int,
                      vocab_size: int, smoothing: float = 0.05) -> np.ndarray:
    """p(token | previous token) from train counts with add-k smoothing. Counts are kept sparse
    (pair keys), so a 50k-token BPE vocabulary costs no V x V matrix."""
    train = train.astype(np.int64)
    pair_keys, pair_counts = np.unique(train[:-1] * vocab_size + train[1:], return_counts=True)
    prev_counts = np.bincount(train[:-1], minlength=vocab_size).astype(float)

    positions = target_positions(len(tokens), block_size)
    prev = tokens[positions - 1].astype(np.int64)
    cur = tokens[positions].astype(np.int64)
    keys = prev * vocab_size + cur
    found = np.searchsorted(pair_keys, keys)
    found = np.minimum(found, len(pair_keys) - 1)
    pair = np.where(pair_keys[found] == keys, pair_counts[found], 0).astype(float)
    p = (pair + smoothing) / (prev_counts[prev] + smoothing * vocab_size)
    return -np.log(p).mean(axis=1)


def summarize_nll(window_nll: np.ndarray, chars_per_token: float) -> dict[str, float]:
    loss = float(window_nll.mean())
    bits_per_token = loss / math.log(2)
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_token": bits_per_token,
            "bits_per_char": bits_per_token / chars_per_token}


def perplexity_interval(window_nll: np.ndarray, samples: int, confidence: float, seed: int
                        ) -> tuple[float, float]:
    """Percentile bootstrap over windows of exp(mean NLL)."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(window_nll), size=(samples, len(window_nll)))
    means = window_nll[index].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return math.exp(low), math.exp(high)
