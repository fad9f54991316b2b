"""`forgeml sample`: images from a generator that MLflow logged, as a PNG grid or an NPZ of
arrays. The generator comes from the local copy of the run's files when there is one
(serving/cache.py); nothing is written unless every check passed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from forgeml.errors import ConfigError, TrackingError
from forgeml.io import atomic_write_bytes
from forgeml.models.dcgan import DCGANGenerator
from forgeml.tasks.generative.images import grid_array, png_bytes, to_uint8

FORMATS = (".png", ".npz")


def load_logged_generator(uri: str, run_id: str) -> DCGANGenerator:
    from forgeml.saved_network import ARTIFACT, load_network
    from forgeml.serving.cache import run_files
    from forgeml.tracking import display_uri

    path = f"model/artifacts/{ARTIFACT}"
    try:
        folder = run_files(uri, run_id, [path]) / path
    except Exception as err:  # noqa: BLE001 - MLflow raises several kinds for a missing run
        raise TrackingError(f"Cannot load the generator of run {run_id} from "
                            f"{display_uri(uri)}: {str(err).splitlines()[0][:200]}") from None
    network = load_network(folder)
    if not isinstance(network, DCGANGenerator):
        raise TrackingError(f"Run {run_id} did not log a generator (its model is a "
                            f"{type(network).__name__}): pass a run of the gan pipeline.")
    return network


def check_request(generator: DCGANGenerator, n: int, class_index: int | None,
                  output: Path) -> None:
    if n < 1:
        raise ConfigError(f"-n {n}: ask for at least one image.")
    if output.suffix.lower() not in FORMATS:
        raise ConfigError(f"-o {output}: the output must end in .png (a grid) or .npz "
                          "(arrays `images` uint8 (N, C, H, W) and `labels`).")
    classes = generator.num_classes
    if class_index is not None and not classes:
        raise ConfigError("--class: this generator is unconditional, it cannot be asked for a "
                          "class; leave --class out.")
    if class_index is not None and not 0 <= class_index < classes:
        raise ConfigError(f"--class {class_index} is out of range: this generator draws "
                          f"classes 0 to {classes - 1}.")


def sample(generator: DCGANGenerator, n: int, class_index: int | None, seed: int
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 (n, C, H, W) images and their classes (every class in turn unless one is given;
    None when unconditional). The same seed gives the same images."""
    classes = generator.num_classes
    labels = None
    if classes:
        labels = (torch.full((n,), class_index, dtype=torch.long) if class_index is not None
                  else torch.arange(n) % classes)
    images = generator.eval().sample(n, labels, generator=torch.Generator().manual_seed(seed))
    return to_uint8(images), None if labels is None else labels.numpy()


def write(output: Path, images: np.ndarray, labels: np.ndarray | None, rows: int) -> Path:
    if output.suffix.lower() == ".png":
        return atomic_write_bytes(output, png_bytes(grid_array(images, rows)))
    buffer = io.BytesIO()
    arrays = {"images": images} | ({"labels": labels} if labels is not None else {})
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(output, buffer.getvalue())


def rows_for(n: int, labels: np.ndarray | None, classes: int) -> int:
    """One row per class when every class is drawn in turn, else a square-ish grid."""
    if labels is not None and classes and n >= classes and len(set(labels.tolist())) > 1:
        return classes
    return max(1, int(np.sqrt(n)))
