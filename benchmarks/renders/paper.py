"""Surfaces and light: paper albedo, fixed noise banks, illumination gradients, shadows.

Everything here returns float32 arrays (albedo or a multiplicative light map) that the styles multiply
together before `camera.finish` quantises the result.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BANK_SIDE = 1700
"""Side of the fixed noise banks, hence the largest render any style may make."""


def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over about width/cells pixels (bicubic upsampled random grid)."""
    gw, gh = max(2, cells), max(2, round(cells * height / width))
    grid = Image.fromarray(rng.standard_normal((gh, gw)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def lighting(width: int, height: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Multiplicative illumination: a linear gradient, vignetting, maybe a hot spot and a cast shadow."""
    small_w, small_h = max(8, width // 4), max(8, height // 4)
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    xs, ys = xs / small_w - 0.5, ys / small_h - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + strength * rng.uniform(0.2, 1.0) * (xs * math.cos(angle) + ys * math.sin(angle))
    light *= 1 - strength * rng.uniform(0, 0.6) * (xs**2 + ys**2)
    if rng.random() < 0.3:  # flash or lamp hot spot
        cx, cy, radius = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.15, 0.5)
        light *= 1 + rng.uniform(0.05, 0.25) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / radius**2)
    if rng.random() < strength * 0.9:  # a hand or phone shadow: a polygon with a soft or hard edge
        light *= 1 - rng.uniform(0.15, 0.45) * shadow_mask(small_w, small_h, rng)
    image = Image.fromarray(light.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def shadow_mask(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """1 inside a random shadow polygon entering from one side of the frame, 0 outside, edge blurred."""
    image = Image.new("L", (width, height), 0)
    side = rng.integers(4)
    depth = rng.uniform(0.1, 0.6)
    a = rng.uniform(-0.3, 0.8)
    b = a + rng.uniform(0.2, 1.0)  # the shadow's base always covers a good part of one side
    corners = {  # a quadrilateral hanging from one side, reaching `depth` into the frame
        0: [(a, 0), (b, 0), (b + 0.2, depth), (a - 0.1, depth + 0.1)],
        1: [(a, 1), (b, 1), (b + 0.1, 1 - depth), (a - 0.2, 1 - depth)],
        2: [(0, a), (0, b), (depth, b + 0.2), (depth + 0.1, a)],
        3: [(1, a), (1, b), (1 - depth, b), (1 - depth - 0.1, a - 0.1)],
    }[int(side)]
    ImageDraw.Draw(image).polygon([(x * width, y * height) for x, y in corners], fill=255)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.005, 0.06) * max(width, height) + 0.3))
    return np.asarray(image, dtype=np.float32) / 255


@functools.cache
def noise_bank() -> tuple[np.ndarray, np.ndarray]:
    """Fixed white noise and fibre-like (slightly blurred) noise, made once; renders crop them at random
    offsets.

    Drawing fresh per-pixel noise for every 1600 px render dominated the render time; random crops of a fixed
    bank look the same to the preprocessing and keep renders reproducible.
    """
    rng = np.random.default_rng(20240601)
    white = rng.standard_normal((BANK_SIDE, BANK_SIDE, 3), dtype=np.float32)
    grain = Image.fromarray(rng.standard_normal((BANK_SIDE // 3, BANK_SIDE // 3), dtype=np.float32), mode="F")
    fibres = np.asarray(grain.resize((BANK_SIDE, BANK_SIDE), Image.Resampling.BICUBIC), dtype=np.float32)
    return white, fibres


def bank_crop(bank: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A height×width window of a noise bank at a random offset."""
    y, x = rng.integers(0, BANK_SIDE - height + 1), rng.integers(0, BANK_SIDE - width + 1)
    return bank[y : y + height, x : x + width]


def paper(width: int, height: int, rng: np.random.Generator, texture: float) -> np.ndarray:
    """Paper albedo height×width×3: an off-white tint with mottling and fibres scaled by `texture`."""
    tint = (rng.uniform(0.82, 0.97) + rng.uniform(-0.04, 0.03, 3)).astype(np.float32)
    tint[2] -= rng.uniform(0, 0.06)  # paper tends to yellow, not blue
    relief = smooth_noise(width, height, int(rng.integers(4, 12)), rng) * (texture * 0.03)
    relief += bank_crop(noise_bank()[1], width, height, rng) * (texture * 0.02)
    relief += 1
    return relief[:, :, None] * tint


def tooth(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Fine paper or board grain in roughly [-1, 1]: which pixels a dry medium (graphite, chalk) catches on."""
    white = bank_crop(noise_bank()[0], width, height, rng)[:, :, int(rng.integers(3))]
    fibres = bank_crop(noise_bank()[1], width, height, rng)
    return np.clip(0.55 * white + 0.7 * fibres, -1.5, 1.5) / 1.5
