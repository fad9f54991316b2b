"""Batches straight from in-memory tensors: one indexing op per batch, no per-sample collate."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from forgeml.errors import DataError


class TensorBatchDataset(Dataset):
    """A map-style dataset whose DataLoader fetches a whole batch with one index operation.

    Samplers (shuffling, Lightning's DistributedSampler) still work: they produce the indices.
    """

    def __init__(self, *tensors: torch.Tensor):
        if len({len(t) for t in tensors}) != 1:
            raise ValueError("all tensors must have the same length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(t[index] for t in self.tensors)


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """collate_fn for TensorBatchDataset: the batch is already stacked."""
    return batch


def tensor_loader(dataset: TensorBatchDataset, batch_size: int, shuffle: bool,
                  pin_memory: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=keep_batch,
                      num_workers=0, pin_memory=pin_memory)


def load_split(prepared: str | Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(prepared) / f"{name}.pt"
    if not path.is_file():
        raise DataError(f"{path} not found: run the prepare stage first (`dvc repro`).")
    try:
        blob = torch.load(path, weights_only=True)
        return blob["images"], blob["labels"]
    except Exception as err:  # any unpickling/zip error means the file is unusable
        raise DataError(f"{path} is corrupted ({type(err).__name__}: {err}); "
                        "rerun `dvc repro --force prepare`.") from None
