"""Prepared interactions for the recommender: the splits, training pairs with negatives re-drawn
every epoch, and candidate lists (the held-out item + its frozen sampled negatives)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from forgeml.errors import DataError

TRAIN, VAL, TEST = 0, 1, 2


@dataclass
class PreparedInteractions:
    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    split: np.ndarray
    val_negatives: np.ndarray
    test_negatives: np.ndarray
    catalog: dict
    n_users: int
    n_items: int

    def rows(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def candidates(self, split: int) -> tuple[np.ndarray, np.ndarray]:
        """Users and (rows, 1 + negatives) candidate items; the true item is column 0."""
        rows = self.rows(split)
        negatives = self.val_negatives if split == VAL else self.test_negatives
        return self.user[rows], np.concatenate([self.item[rows, None], negatives], axis=1)

    def seen(self, splits: tuple[int, ...]) -> list[set[int]]:
        """Per user, the items they interacted with in `splits`."""
        out: list[set[int]] = [set() for _ in range(self.n_users)]
        mask = np.isin(self.split, splits)
        for u, i in zip(self.user[mask].tolist(), self.item[mask].tolist(), strict=True):
            out[u].add(i)
        return out


def load_interactions(prepared: str | Path) -> PreparedInteractions:
    folder = Path(prepared)
    path = folder / "interactions.npz"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    arrays = np.load(path)
    catalog = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
    return PreparedInteractions(
        user=arrays["user"].astype(np.int64), item=arrays["item"].astype(np.int64),
        timestamp=arrays["timestamp"], split=arrays["split"],
        val_negatives=np.load(folder / "val_negatives.npy").astype(np.int64),
        test_negatives=np.load(folder / "test_negatives.npy").astype(np.int64),
        catalog=catalog, n_users=len(catalog["user_ids"]), n_items=len(catalog["item_ids"]))


def draw_negatives(users: np.ndarray, positive_keys: np.ndarray, n_items: int, per_positive: int,
                   rng: np.random.Generator) -> np.ndarray:
    """`per_positive` uniformly drawn items per row of `users` that are not that user's training
    positives (`positive_keys` = sorted user * n_items + item); collisions are re-drawn."""
    repeated = np.repeat(users, per_positive)
    items = rng.integers(0, n_items, size=len(repeated))
    clash = np.isin(repeated * n_items + items, positive_keys)
    while clash.any():
        items[clash] = rng.integers(0, n_items, size=int(clash.sum()))
        clash[clash] = np.isin(repeated[clash] * n_items + items[clash], positive_keys)
    return items


class NegativeSampledPairs(IterableDataset):
    """Each pass (epoch): every training positive plus `num_negatives` fresh negatives for it,
    shuffled, in batches of (pairs (B, 2), labels (B,)). Each DDP rank takes its own slice."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, num_negatives: int,
                 batch_size: int, seed: int):
        self.users, self.items, self.n_items = users, items, n_items
        self.num_negatives, self.batch_size, self.seed = num_negatives, batch_size, seed
        self.positive_keys = np.unique(users * n_items + items)
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dist = torch.distributed
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        negatives = draw_negatives(self.users, self.positive_keys, self.n_items,
                                   self.num_negatives, rng)
        users = np.concatenate([self.users, np.repeat(self.users, self.num_negatives)])
        items = np.concatenate([self.items, negatives])
        labels = np.concatenate([np.ones(len(self.users)), np.zeros(len(negatives))])
        order = rng.permutation(len(users))[rank::world]
        pairs = torch.from_numpy(np.stack([users[order], items[order]], axis=1))
        targets = torch.from_numpy(labels[order].astype(np.float32))
        for start in range(0, len(order), self.batch_size):
            yield pairs[start:start + self.batch_size], targets[start:start + self.batch_size]


class InteractionExamples(Dataset):
    """The training interactions as DP-SGD's examples: example j is interaction j with
    `num_negatives` items drawn for it, (pairs (1 + n, 2), labels (1 + n,)), the observed item
    first. A batch is fetched with one index operation (`__getitems__`).

    The negatives are uniform over every item but the interaction's own, so that an example
    depends on nothing but itself; excluding the user's other interactions, as the non-private
    sampler does, would let one interaction change the others' examples and void the
    per-example bound. A negative is then sometimes an item the user did interact with
    (a few percent on MovieLens)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, num_negatives: int,
                 seed: int):
        if n_items < 2:
            raise DataError("Negative sampling needs at least two items.")
        self.users = torch.from_numpy(users.astype(np.int64))
        self.items = torch.from_numpy(items.astype(np.int64))
        self.n_items, self.num_negatives = n_items, num_negatives
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs, labels = self.__getitems__([index])
        return pairs[0], labels[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        users, items = self.users[index], self.items[index]
        # Uniform over the other n_items - 1 items: draw below n_items - 1, skip the own item.
        drawn = torch.randint(0, self.n_items - 1, (len(index), self.num_negatives),
                              generator=self.generator)
        negatives = drawn + (drawn >= items[:, None]).long()
        candidates = torch.cat([items[:, None], negatives], dim=1)
        pairs = torch.stack([users[:, None].expand_as(candidates), candidates], dim=-1)
        labels = torch.zeros(candidates.shape, dtype=torch.float32)
        labels[:, 0] = 1.0
        return pairs, labels
