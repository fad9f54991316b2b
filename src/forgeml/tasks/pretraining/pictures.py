"""The reconstruction grid as a picture: originals, what the encoder saw (hidden patches
black) and the reconstruction, one row each."""

from __future__ import annotations

import numpy as np
import torch

from forgeml.tasks.generative.images import grid_array, to_uint8


def reconstruction_picture(grid: torch.Tensor, card: dict) -> np.ndarray:
    """(3, n, C, H, W) normalised images -> a uint8 picture of 3 rows."""
    norm = card["normalization"]
    pixels = grid * norm["std"] + norm["mean"]  # back to [0, 1]
    rows = pixels.reshape(-1, *pixels.shape[2:])  # (3n, C, H, W), row by row
    return grid_array(to_uint8(rows.numpy()), rows=3)
