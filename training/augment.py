"""Batch augmentation on the training device: stroke width, then one geometric resampling per image (a random affine
transform plus, for some images, an elastic distortion), all as whole-batch tensor operations.

Real uploads differ from MNIST in pen width (fineliner to marker) and in the small wobbles of a hand; the affine part
covers pose (tilt, size, position). The elastic part follows Simard, Steinkraus and Platt (2003), "Best practices for
convolutional neural networks applied to visual document analysis": a uniform random displacement field in [-1, 1],
smoothed by a Gaussian of `sigma` pixels and scaled by `alpha` pixels. It is added to the affine sampling grid, so an
image is interpolated once, not twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """How strongly to distort training images; the defaults are the shipped recipe (`--help` shows them)."""

    max_rotation_deg: float = 10.0
    max_scale: float = 0.1  # scale drawn from [1 - max_scale, 1 + max_scale]
    max_shift: float = 0.1  # fraction of the image side (0.1 = ±2.8 px on 28×28)
    elastic_probability: float = 0.0  # off in the shipped recipe: 0.5 gave the same validation accuracy
    elastic_alpha: float = 34.0  # pixels: scale of the smoothed displacement field
    elastic_sigma: float = 4.0  # pixels: Gaussian smoothing of the field (larger = smoother, gentler)
    stroke_probability: float = 0.0  # off in the shipped recipe: 0.5 gave the same validation accuracy
    stroke_strength: float = 1.0  # 1 = a full 3×3 grey dilation or erosion; each image draws from [0, this]

    @property
    def elastic(self) -> bool:
        return self.elastic_probability > 0 and self.elastic_alpha > 0

    @property
    def stroke(self) -> bool:
        return self.stroke_probability > 0 and self.stroke_strength > 0


def augment(images: torch.Tensor, generator: torch.Generator, config: Augmentation) -> torch.Tensor:
    """Distort each image of an N×1×H×W batch in [0, 1] by its own random amounts; result in [0, 1], same shape.

    Padding is 0, i.e. background, so call this before normalising. The generator must live on the images' device;
    the draws depend only on it, the batch size and `config`, so a run is repeatable for a seed.
    """
    if config.stroke:
        images = random_stroke_width(images, generator, config.stroke_probability, config.stroke_strength)
    grid = affine_grid(images, generator, config.max_rotation_deg, config.max_scale, config.max_shift)
    if config.elastic:
        grid = grid + elastic_displacement(
            images, generator, config.elastic_probability, config.elastic_alpha, config.elastic_sigma
        )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)


def affine_grid(
    images: torch.Tensor, generator: torch.Generator, max_rotation_deg: float, max_scale: float, max_shift: float
) -> torch.Tensor:
    """An N×H×W×2 sampling grid that rotates, scales and shifts each image by its own uniform random amount."""
    n = images.shape[0]
    uniform = torch.rand(n, 4, generator=generator, device=images.device)
    angle = (uniform[:, 0] * 2 - 1) * math.radians(max_rotation_deg)
    scale = 1 + (uniform[:, 1] * 2 - 1) * max_scale
    shift = (uniform[:, 2:] * 2 - 1) * (2 * max_shift)  # affine_grid coordinates span [-1, 1], i.e. 2 units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    return F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)


def elastic_displacement(
    images: torch.Tensor, generator: torch.Generator, probability: float, alpha: float, sigma: float
) -> torch.Tensor:
    """Smoothed random displacements (N×H×W×2, in grid units) for a `probability` share of the images, 0 elsewhere."""
    n, _, height, width = images.shape
    device, dtype = images.device, images.dtype
    chosen = torch.rand(n, generator=generator, device=device) < probability
    field = torch.rand(n, 2, height, width, generator=generator, device=device, dtype=dtype) * 2 - 1
    field = gaussian_blur(field, sigma) * alpha  # pixels
    field = field * chosen.to(dtype).view(n, 1, 1, 1)
    # grid_sample's unit is half the image side: one pixel is 2 / side.
    scale = torch.tensor([2 / width, 2 / height], device=device, dtype=dtype)
    return field.permute(0, 2, 3, 1) * scale


def gaussian_blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of every H×W plane of an N×C×H×W tensor, zero beyond the edges.

    Written as G_H · plane · G_Wᵀ with Toeplitz Gaussian matrices: the same result as a separable convolution with
    zero padding, and on a CPU far faster than a depthwise convolution with a long kernel.
    """
    height, width = field.shape[-2:]
    return gaussian_matrix(height, sigma, field) @ field @ gaussian_matrix(width, sigma, field).T


def gaussian_matrix(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """size×size matrix whose row i is a normalised Gaussian (truncated at 3σ) centred on i, cut off at the edges."""
    radius = max(1, math.ceil(3 * sigma))
    positions = torch.arange(size, device=like.device, dtype=like.dtype)
    distance = positions.view(-1, 1) - positions.view(1, -1)
    total = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype) / sigma) ** 2)
    weights = torch.exp(-0.5 * (distance / sigma) ** 2) / total.sum()
    return weights * (distance.abs() <= radius)


def random_stroke_width(
    images: torch.Tensor, generator: torch.Generator, probability: float, strength: float
) -> torch.Tensor:
    """Thicken or thin the strokes of a `probability` share of the images (half each way), by a random amount.

    Grey dilation (3×3 max-pool) thickens ink by about a pixel on each side, grey erosion (2×2 min-pool) thins it by
    about a pixel; each chosen image blends toward one of them by a weight drawn from [0, strength], so widths vary
    continuously.
    """
    n, device = images.shape[0], images.device
    uniform = torch.rand(n, 3, generator=generator, device=device, dtype=images.dtype)
    weight = (uniform[:, 0] < probability).to(images.dtype) * uniform[:, 1] * strength
    thicken = uniform[:, 2] < 0.5
    target = torch.where(thicken.view(n, 1, 1, 1), thickened(images), thinned(images))
    return torch.lerp(images, target, weight.view(n, 1, 1, 1))


def thickened(images: torch.Tensor) -> torch.Tensor:
    """Grey dilation by a 3×3 square: every stroke grows by a pixel on each side."""
    return F.max_pool2d(images, 3, stride=1, padding=1)


def thinned(images: torch.Tensor) -> torch.Tensor:
    """Grey erosion by a 2×2 square: every stroke loses a pixel (a 3×3 one would erase MNIST's 2-pixel strokes)."""
    return -F.max_pool2d(F.pad(-images, (0, 1, 0, 1)), 2, stride=1)
