"""What the digit is written on, beyond plain paper: printed rulings (squared, ruled) and dark boards.

Rulings are drawn analytically (distance to the nearest line), so a 1-px line stays 1 px and antialiased at any
angle and spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from benchmarks.renders.inks import BOARDS, MARGIN_RED, RULING_COLOURS
from benchmarks.renders.paper import smooth_noise, tooth


@dataclass(frozen=True)
class Ruling:
    """Printed lines: `squared` (graph paper) or `ruled` (lined paper), `spacing` px apart, `width` px wide."""

    kind: str
    spacing: float
    width: float
    angle: float
    """Radians; the page's tilt in the image."""
    colour: tuple[float, float, float]
    strength: float
    """How much of the way from paper to `colour` a line goes (faint print, light lines)."""
    margin: bool = False
    """Ruled pages often have a red margin line."""


def random_ruling(rng: np.random.Generator, digit_px: float, angle: float) -> Ruling:
    """Squared paper with 1.5–5 squares per digit height, or ruled paper with 0.8–2.5 line gaps per digit height."""
    squared = rng.random() < 0.6
    spacing = digit_px / (rng.uniform(1.5, 5.0) if squared else rng.uniform(0.8, 2.5))
    width = float(np.clip(spacing * rng.uniform(0.012, 0.03), 0.7, 3.0))  # printed lines: fine, whatever the scale
    colour = RULING_COLOURS[int(rng.integers(len(RULING_COLOURS)))]
    return Ruling(
        kind="squared" if squared else "ruled",
        spacing=spacing,
        width=width,
        angle=angle,
        colour=colour,
        strength=rng.uniform(0.45, 0.95),
        margin=not squared and rng.random() < 0.4,
    )


def line_coverage(offset: np.ndarray, spacing: float, width: float) -> np.ndarray:
    """Coverage of evenly spaced lines, given each pixel's signed distance across them."""
    distance = np.abs((offset + spacing / 2) % spacing - spacing / 2)
    return np.clip(width / 2 + 0.5 - distance, 0, 1) * min(1.0, width)


def ruling_albedo(width: int, height: int, ruling: Ruling, rng: np.random.Generator) -> np.ndarray:
    """A height×width×3 multiplier that prints the ruling on paper (1 where there is no line)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cos, sin = math.cos(ruling.angle), math.sin(ruling.angle)
    across = ys * cos - xs * sin + rng.uniform(0, ruling.spacing)  # distance across horizontal lines
    along = xs * cos + ys * sin + rng.uniform(0, ruling.spacing)
    lines = line_coverage(across, ruling.spacing, ruling.width)
    if ruling.kind == "squared":
        lines = np.maximum(lines, line_coverage(along, ruling.spacing, ruling.width))
    lines *= ruling.strength * (1 + 0.1 * smooth_noise(width, height, 6, rng))  # uneven print
    colour = np.array(ruling.colour, np.float32)
    out = 1 - lines[:, :, None] * (1 - colour)
    if ruling.margin:
        position = rng.uniform(0.08, 0.2) * width
        margin = np.clip(ruling.width + 0.5 - np.abs(along - position - along.min()), 0, 1) * ruling.strength
        out *= 1 - margin[:, :, None] * (1 - np.array(MARGIN_RED, np.float32))
    return out


def board(width: int, height: int, rng: np.random.Generator, smudge: float) -> np.ndarray:
    """A dark board's albedo height×width×3: its colour, grain, and chalk dust wiped across it (`smudge` 0–1)."""
    colour = np.array(BOARDS[int(rng.integers(len(BOARDS)))], np.float32) * rng.uniform(0.85, 1.15)
    surface = 1 + 0.08 * smooth_noise(width, height, int(rng.integers(3, 9)), rng) + 0.04 * tooth(width, height, rng)
    albedo = surface[:, :, None] * colour
    if smudge > 0:  # erased chalk: broad, streaky, whitish clouds
        dust = np.clip(smooth_noise(width, height, int(rng.integers(2, 6)), rng), 0, None)
        bands = rng.random((int(rng.integers(12, 40)), 3)).astype(np.float32)  # the eraser's passes: long bands
        streak = np.asarray(Image.fromarray(bands, mode="F").resize((width, height), Image.Resampling.BICUBIC))
        albedo += (smudge * 0.12 * dust * (0.5 + 0.5 * streak))[:, :, None]
    return albedo
