"""What every image source returns, and the checks every source's data must pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forgeml.errors import DataError


@dataclass
class ImageSource:
    """Raw images in [0, 1] as (N, C, H, W) float32 with int64 labels, plus provenance."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    licence: str
    origin: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    # Sources with an official test split keep it; others are split by prepare.
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def validate_images(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    source: str,
    image_shape: tuple[int, ...],
    num_classes: int,
) -> None:
    """Raise DataError naming the source and the problem; return if the arrays are usable."""
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.number):
        raise DataError(f"{source}: images must be a numeric array, got {type(images).__name__}"
                        f" of {getattr(images, 'dtype', '?')}.")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise DataError(f"{source}: images have shape {images.shape}; expected (N, "
                        f"{', '.join(map(str, image_shape))}) as data.image_shape says.")
    if len(images) == 0:
        raise DataError(f"{source}: no images.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{source}: {len(labels)} labels for {len(images)} images.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got {labels.dtype}.")
    bad_values = ~np.isfinite(images)
    if bad_values.any():
        rows = np.unique(np.nonzero(bad_values)[0])
        raise DataError(f"{source}: {len(rows)} images contain NaN or inf "
                        f"(first rows: {rows[:5].tolist()}).")
    if images.min() < 0 or images.max() > 1:
        raise DataError(f"{source}: pixel values must be scaled to [0, 1], got "
                        f"[{images.min():.3g}, {images.max():.3g}].")
    out_of_range = (labels < 0) | (labels >= num_classes)
    if out_of_range.any():
        raise DataError(f"{source}: {int(out_of_range.sum())} labels outside 0..{num_classes - 1} "
                        f"(e.g. {labels[out_of_range][:5].tolist()}); check data.num_classes.")


def image_columns(card: dict) -> list[dict]:
    """A prepared image example's fields, as MLflow schema entries (the run's dataset input)."""
    return [{"name": "image", "type": "tensor",
             "tensor-spec": {"dtype": "float32", "shape": [-1, *card.get("image_shape", [])]}},
            {"name": "label", "type": "long"}]
