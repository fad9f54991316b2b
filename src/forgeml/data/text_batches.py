"""Tokenised text: the encoder's WordPiece tokenizer (the `tokenizers` library, no transformers
needed at serving time), padding to the longest text of a batch, and the prepared splits. Light
on purpose: `forgeml predict` imports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from forgeml.errors import DataError


def load_tokenizer(path: str | Path, max_length: int):
    """A WordPiece tokenizer that truncates to `max_length` tokens ([CLS] and [SEP] included)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def encode(tokenizer, texts: list[str]) -> list[np.ndarray]:
    empty = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if empty:
        raise DataError(f"{len(empty)} text(s) are empty (first at position {empty[0]}): "
                        "there is nothing to classify. Remove them or give real text.")
    return [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(list(texts))]


def pad(sequences: list[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both (B, longest)."""
    longest = max(len(s) for s in sequences)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Fixed batches in length order (evaluation: minimal padding, results put back by index)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def read_split(prepared: str | Path, split: str) -> tuple[list[str], np.ndarray]:
    path = Path(prepared) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=np.int64)
