"""Batched random shifts and rotations (one affine warp per batch, on the batch's device)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, max_shift_px: float, max_rotation_deg: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each image by U(-r, r) degrees and shift it by U(-s, s) pixels per axis.

    Empty borders take the batch's background value (its minimum), as for MNIST-like images.
    """
    n, _, height, width = images.shape
    device = images.device
    angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(
        max_rotation_deg)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    shift = (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * max_shift_px
    shift = shift * torch.tensor([2 / width, 2 / height], device=device)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    background = images.amin()
    warped = F.grid_sample(images - background, grid, align_corners=False, padding_mode="zeros")
    return warped + background
