"""Token arrays on disk (memory-mapped, nanoGPT's `.bin` format) and the batches a language model
trains on: random windows for training, a fixed set of windows for validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset

from forgeml.errors import DataError


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def write_tokens(path: Path, ids: list[int], vocab_size: int) -> None:
    np.asarray(ids, dtype=token_dtype(vocab_size)).tofile(path)


def load_tokens(prepared: str | Path, split: str, vocab_size: int) -> np.ndarray:
    path = Path(prepared) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    return np.memmap(path, dtype=token_dtype(vocab_size), mode="r")


def windows(tokens: np.ndarray, offsets: torch.Tensor, block_size: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs tokens[o:o+T] and next-token targets tokens[o+1:o+T+1] for each offset o."""
    rows = np.stack([tokens[o:o + block_size + 1] for o in offsets.tolist()]).astype(np.int64)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]


def check_long_enough(tokens: np.ndarray, block_size: int, split: str) -> None:
    if len(tokens) <= block_size:
        raise DataError(
            f"The {split} split has {len(tokens):,} tokens, not more than model.block_size "
            f"({block_size}): lower model.block_size or give the split more text.")


class RandomWindows(IterableDataset):
    """An endless stream of batches of windows at uniformly random offsets (as nanoGPT samples).
    Each DDP rank draws its own stream; `n_batches` makes it finite (validation)."""

    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int,
                 n_batches: int | None = None, skip_batches: int = 0):
        check_long_enough(tokens, block_size, "given")
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.seed, self.n_batches, self.skip_batches = seed, n_batches, skip_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        # Validation draws the same windows every time, so its losses are comparable.
        seed = self.seed if self.n_batches is not None else self.seed + 1000 * rank
        generator = torch.Generator().manual_seed(seed)
        high = len(self.tokens) - self.block_size
        for _ in range(self.skip_batches):  # a resumed run continues the stream, not restarts it
            torch.randint(high, (self.batch_size,), generator=generator)
        produced = 0
        while self.n_batches is None or produced < self.n_batches:
            offsets = torch.randint(high, (self.batch_size,), generator=generator)
            yield windows(self.tokens, offsets, self.block_size)
            produced += 1
