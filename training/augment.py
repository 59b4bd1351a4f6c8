"""Batch augmentation on the training device: one random affine transform per image, all in one kernel call."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 10.0,
    max_translate: float = 0.1,
    scale_range: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Rotate, scale and shift each image of an N×1×H×W batch in [0, 1] by its own random amount.

    Padding is 0, i.e. background, so call this before normalising. `max_translate` is a fraction of the image side
    (0.1 = ±2.8 px on 28×28). The generator must live on the images' device; it makes a run repeatable for a seed.
    """
    n, device = images.shape[0], images.device
    uniform = torch.rand(n, 4, generator=generator, device=device)
    angle = (uniform[:, 0] * 2 - 1) * math.radians(max_rotation_deg)
    scale = scale_range[0] + uniform[:, 1] * (scale_range[1] - scale_range[0])
    shift = (uniform[:, 2:] * 2 - 1) * (2 * max_translate)  # affine_grid coordinates span [-1, 1], i.e. 2 units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
