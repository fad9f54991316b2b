"""Generated images as pictures: a grid of uint8 images (one class per row) and PNG bytes."""

from __future__ import annotations

import io

import numpy as np


def grid_array(images: np.ndarray, rows: int, pad: int = 1) -> np.ndarray:
    """uint8 (N, C, H, W) images laid out in `rows` rows, `pad` black pixels apart: (H', W')
    for one channel, (H', W', C) otherwise."""
    images = np.asarray(images)
    n, channels, height, width = images.shape
    rows = max(1, min(rows, n))
    columns = -(-n // rows)
    grid = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels),
                    dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
        grid[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    return grid[..., 0] if channels == 1 else grid


def png_bytes(picture: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def to_uint8(pixels) -> np.ndarray:
    """[0, 1] float pixels (a tensor or array) as uint8."""
    return (np.clip(np.asarray(pixels, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
