"""The sentiment pipeline's LightningDataModule: every training text once per epoch, in
batches of similar length (little padding) and a new random order each epoch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from forgeml.data.text_batches import (
    encode,
    length_sorted_batches,
    load_tokenizer,
    pad,
    read_split,
)
from forgeml.errors import DataError

# Batches are drawn from pools of this many batches sorted by length: little padding, still random.
BUCKET_POOL_BATCHES = 50


class BucketedTextBatches(IterableDataset):
    """One pass = every training text once, in batches of similar length, in random order; a new
    order each epoch. Each DDP rank takes its own equal share."""

    def __init__(self, sequences: list[np.ndarray], labels: np.ndarray, batch_size: int,
                 seed: int):
        self.sequences, self.labels = sequences, labels
        self.lengths = np.array([len(s) for s in sequences])
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    def __len__(self) -> int:
        """Batches per rank and epoch (Lightning sizes the learning-rate schedule with it)."""
        batches = sum(-(-len(chunk) // self.batch_size) for chunk in self._pools(
            np.arange(len(self.sequences))))
        return batches // self._world()[1]

    @staticmethod
    def _world() -> tuple[int, int]:
        dist = torch.distributed
        return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)

    def _pools(self, order: np.ndarray) -> list[np.ndarray]:
        pool = self.batch_size * BUCKET_POOL_BATCHES
        return [order[start:start + pool] for start in range(0, len(order), pool)]

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        rank, world = self._world()
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        batches = []
        for chunk in self._pools(rng.permutation(len(self.sequences))):
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        for index in batches[rank::world][:len(batches) // world]:  # DDP ranks stay in step
            yield pad([self.sequences[i] for i in index]), torch.from_numpy(self.labels[index])


class FixedTextBatches(IterableDataset):
    def __init__(self, sequences: list[np.ndarray], labels: np.ndarray, batch_size: int):
        self.sequences, self.labels = sequences, labels
        self.batches = length_sorted_batches(np.array([len(s) for s in sequences]), batch_size)

    def __iter__(self):
        for index in self.batches:
            yield pad([self.sequences[i] for i in index]), torch.from_numpy(self.labels[index])


class TextDataModule(pl.LightningDataModule):
    def __init__(self, prepared: str | Path, tokenizer_file: str | Path, max_length: int,
                 batch_size: int, eval_batch_size: int, seed: int,
                 train_limit: int | None = None):
        super().__init__()
        self.prepared, self.tokenizer_file, self.max_length = prepared, tokenizer_file, max_length
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train_limit = train_limit

    def setup(self, stage: str | None = None) -> None:
        tokenizer = load_tokenizer(self.tokenizer_file, self.max_length)
        texts, labels = read_split(self.prepared, "train")
        if self.train_limit:
            texts, labels = texts[:self.train_limit], labels[:self.train_limit]
        val_texts, val_labels = read_split(self.prepared, "val")
        if not texts or not val_texts:
            raise DataError("The train or val split is empty: check data.split.")
        self.train_set = BucketedTextBatches(encode(tokenizer, texts), labels, self.batch_size,
                                             self.seed)
        self.val_set = FixedTextBatches(encode(tokenizer, val_texts), val_labels,
                                        self.eval_batch_size)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=None)

    # In every checkpoint, so a resumed run shuffles the next epoch, not epoch 0, again.
    def state_dict(self) -> dict:
        return {"epochs_drawn": self.train_set.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.train_set.epoch = int(state.get("epochs_drawn", 0))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=None)
