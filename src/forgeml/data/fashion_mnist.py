"""Full Fashion-MNIST (Zalando, MIT) from a folder of IDX files, e.g. Debian's package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.data.base import ImageSource
from forgeml.data.idx import read_idx
from forgeml.errors import DataError
from forgeml.io import sha256_file

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def load(directory: str) -> ImageSource:
    folder = Path(directory)
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}). Install it with "
            "`sudo apt-get install dataset-fashion-mnist`, or set data.source.directory to a "
            "folder holding the four IDX files."
        )
    return from_idx_folder(folder, FILES, name="Fashion-MNIST",
                           licence="MIT (Zalando Research)",
                           origin=f"IDX files in {folder.name}/")


def from_idx_folder(folder: Path, files: dict[str, str], *, name: str, licence: str,
                    origin: str) -> ImageSource:
    arrays = {key: read_idx(folder / filename) for key, filename in files.items()}
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise DataError(f"{folder}: {split} split has {n_images} images but {n_labels} labels.")

    def scale(images: np.ndarray) -> np.ndarray:
        return (images.astype(np.float32) / 255.0)[:, None, :, :]

    return ImageSource(
        name=name,
        images=scale(arrays["train_images"]),
        labels=arrays["train_labels"].astype(np.int64),
        test_images=scale(arrays["test_images"]),
        test_labels=arrays["test_labels"].astype(np.int64),
        licence=licence,
        origin=origin,
        files={filename: sha256_file(folder / filename) for filename in files.values()},
    )
