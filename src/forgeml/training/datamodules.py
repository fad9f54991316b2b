"""The LightningDataModules that feed training from the prepared splits: image tensors,
interaction pairs with negatives re-drawn every epoch, and random token windows."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from forgeml.data.interactions import (
    TRAIN,
    VAL,
    InteractionExamples,
    NegativeSampledPairs,
    load_interactions,
)
from forgeml.data.tensors import TensorBatchDataset, load_split, tensor_loader
from forgeml.data.token_stream import RandomWindows, check_long_enough, load_tokens
from forgeml.errors import DataError


class PreparedDataModule(pl.LightningDataModule):
    """Serves the train/val/test tensors written by the prepare stage."""

    def __init__(self, prepared_dir: str | Path, batch_size: int, eval_batch_size: int,
                 pin_memory: bool = False):
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.pin_memory = pin_memory
        self.splits: dict[str, TensorBatchDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for name in ("train", "val", "test"):
            if name not in self.splits:
                self.splits[name] = TensorBatchDataset(*load_split(self.prepared_dir, name))

    def train_dataloader(self) -> DataLoader:
        return tensor_loader(self.splits["train"], self.batch_size, True, self.pin_memory)

    def val_dataloader(self) -> DataLoader:
        return tensor_loader(self.splits["val"], self.eval_batch_size, False, self.pin_memory)

    def test_dataloader(self) -> DataLoader:
        return tensor_loader(self.splits["test"], self.eval_batch_size, False, self.pin_memory)


class SubsetDataModule(PreparedDataModule):
    """The prepared splits with training restricted to `indices` of the train split (a labelled
    subset); validation and test unchanged."""

    def __init__(self, prepared_dir: str | Path, indices: torch.Tensor, batch_size: int,
                 eval_batch_size: int, pin_memory: bool = False):
        super().__init__(prepared_dir, batch_size, eval_batch_size, pin_memory)
        self.indices = indices

    def setup(self, stage: str | None = None) -> None:
        if "train" not in self.splits:
            images, labels = load_split(self.prepared_dir, "train")
            self.splits["train"] = TensorBatchDataset(images[self.indices], labels[self.indices])
        super().setup(stage)


class InteractionDataModule(pl.LightningDataModule):
    """Training pairs with negatives re-drawn each epoch; with `per_interaction`, each training
    interaction and its negatives as one example (what DP-SGD clips and counts), in batches of
    `batch_size` interactions."""

    def __init__(self, prepared: str | Path, batch_size: int, eval_batch_size: int,
                 num_negatives: int, seed: int, per_interaction: bool = False):
        super().__init__()
        self.prepared, self.batch_size, self.eval_batch_size = prepared, batch_size, eval_batch_size
        self.num_negatives, self.seed = num_negatives, seed
        self.per_interaction = per_interaction

    def setup(self, stage: str | None = None) -> None:
        self.data = load_interactions(self.prepared)
        train = self.data.rows(TRAIN)
        if len(train) == 0 or len(self.data.rows(VAL)) == 0:
            raise DataError("The train or val split is empty: check data.split.")
        users, items = self.data.user[train], self.data.item[train]
        self.train_pairs = InteractionExamples(
            users, items, self.data.n_items, self.num_negatives, self.seed) \
            if self.per_interaction else NegativeSampledPairs(
                users, items, self.data.n_items, self.num_negatives, self.batch_size, self.seed)

    def train_dataloader(self) -> DataLoader:
        if self.per_interaction:
            return tensor_loader(self.train_pairs, self.batch_size, shuffle=True)
        return DataLoader(self.train_pairs, batch_size=None)

    # In every checkpoint, so a resumed run draws the next epoch's negatives, not epoch 0's.
    def state_dict(self) -> dict:
        return {"epochs_drawn": getattr(self.train_pairs, "epoch", 0)}  # 0: DP examples

    def load_state_dict(self, state: dict) -> None:
        self.train_pairs.epoch = int(state.get("epochs_drawn", 0))

    def val_dataloader(self) -> DataLoader:
        users, candidates = self.data.candidates(VAL)
        return tensor_loader(TensorBatchDataset(torch.from_numpy(users),
                                                torch.from_numpy(candidates)),
                             self.eval_batch_size, shuffle=False)


class TokenDataModule(pl.LightningDataModule):
    def __init__(self, prepared: str | Path, vocab_size: int, block_size: int, batch_size: int,
                 val_batches: int, seed: int, pin_memory: bool = False):
        super().__init__()
        self.prepared, self.vocab_size, self.block_size = prepared, vocab_size, block_size
        self.batch_size, self.val_batches, self.seed = batch_size, val_batches, seed
        self.pin_memory = pin_memory

    def setup(self, stage: str | None = None) -> None:
        self.train_tokens = load_tokens(self.prepared, "train", self.vocab_size)
        self.val_tokens = load_tokens(self.prepared, "val", self.vocab_size)
        check_long_enough(self.train_tokens, self.block_size, "train")
        check_long_enough(self.val_tokens, self.block_size, "val")

    def train_dataloader(self) -> DataLoader:
        # After a resume the trainer has restored its step count: skip the batches drawn so far.
        trainer = self.trainer
        done = trainer.global_step * trainer.accumulate_grad_batches if trainer else 0
        stream = RandomWindows(self.train_tokens, self.block_size, self.batch_size, self.seed,
                               skip_batches=done)
        return DataLoader(stream, batch_size=None, pin_memory=self.pin_memory)

    def val_dataloader(self) -> DataLoader:
        stream = RandomWindows(self.val_tokens, self.block_size, self.batch_size,
                               self.seed + 1, n_batches=self.val_batches)
        return DataLoader(stream, batch_size=None, pin_memory=self.pin_memory)
