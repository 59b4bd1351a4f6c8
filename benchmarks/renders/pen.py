"""Thin strokes drawn along centre lines at upload resolution: pens, pencils, chalk.

`pose` turns centre lines (frame units) into pixel coordinates of a digit of a given height, tilted and
stretched like a hand or a camera would; `draw` rasterises them with an antialiased round pen whose width
varies with pressure along the stroke, which may skip (small gaps) and leave grain (dry media). Working on
lines rather than on an upscaled bitmap keeps a 1–3 px stroke 1–3 px wide whatever the image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.renders.centreline import Polyline, resample


@dataclass(frozen=True)
class Pen:
    """How a stroke is laid down. Widths are in output pixels, fractions are relative."""

    width: float
    pressure: float = 0.0
    """Amplitude of the stroke width's variation along the stroke (0.15: ±15 %)."""
    fade: float = 0.0
    """Amplitude of the ink density's variation along the stroke (a ballpoint running dry, a pencil's angle)."""
    gap_chance: float = 0.0
    """Chance that a stroke has one small gap where the pen skipped."""
    gap_length: float = 0.0
    """Length of such a gap, in pixels."""
    streaks: float = 0.0
    """Depth of the streaks that run along a dry medium's stroke (0: solid ink)."""


def ink_extent(lines: list[Polyline]) -> tuple[float, float]:
    """Width and height of the lines' bounding box."""
    points = np.concatenate(lines)
    span = points.max(0) - points.min(0)
    return float(span[0]), float(span[1])


def pose(
    lines: list[Polyline],
    size_px: float,
    rng: np.random.Generator,
    max_degrees: float,
    max_stretch: float,
    fit: tuple[float, float] | None = None,
) -> list[Polyline]:
    """The lines scaled so the ink's larger side is `size_px` (a digit's height, as MNIST fits digits in a square
    box), tilted by up to ±max_degrees and stretched by up to ±max_stretch, then shrunk if needed to fit a (width,
    height) box; coordinates start near (0, 0)."""
    scale = size_px / max(*ink_extent(lines), 1e-3)
    angle = math.radians(rng.uniform(-max_degrees, max_degrees))
    stretch = 1 + rng.uniform(-max_stretch, max_stretch)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = rotation @ np.diag([scale * stretch, scale / stretch])
    posed = [line @ matrix.T for line in lines]
    if fit is not None:
        width, height = ink_extent(posed)
        shrink = min(1.0, fit[0] / max(width, 1e-3), fit[1] / max(height, 1e-3))
        posed = [line * shrink for line in posed]
    low = np.concatenate(posed).min(0)
    return [line - low for line in posed]


def wobble(lines: list[Polyline], rng: np.random.Generator, amount: float) -> list[Polyline]:
    """Displace the lines by a smooth random field of about `amount` units: a hand copying a printed shape."""
    waves = []
    for _ in range(3):
        direction = rng.uniform(0, 2 * math.pi)
        waves.append(
            (
                np.array([math.cos(direction), math.sin(direction)]) * 2 * math.pi / rng.uniform(8, 30),
                rng.uniform(0, 2 * math.pi, 2),
                rng.uniform(0.4, 1.0, 2) * amount,
            )
        )
    out = []
    for line in lines:
        moved = line.astype(np.float64).copy()
        for frequency, phase, size in waves:
            arg = line @ frequency
            moved[:, 0] += size[0] * np.sin(arg + phase[0])
            moved[:, 1] += size[1] * np.sin(arg + phase[1])
        out.append(moved)
    return out


def along_profile(length: float, rng: np.random.Generator, wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random function of arc length in about [-1, 1], sampled every pixel: (positions, values)."""
    count = max(2, int(length) + 2)
    positions = np.arange(count, dtype=np.float64)
    values = np.zeros(count)
    for _ in range(3):
        period = wavelength * rng.uniform(0.5, 1.5)
        values += np.sin(2 * math.pi * positions / period + rng.uniform(0, 2 * math.pi))
    return positions, values / 3


def draw(lines: list[Polyline], pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Coverage in [0, 1] of `lines` (pixel coordinates) drawn with `pen`, on a canvas just big enough."""
    widest = pen.width * (1 + pen.pressure) / 2 + 2
    points = np.concatenate(lines)
    low = points.min(0) - widest
    size = np.ceil(points.max(0) - low + widest).astype(int) + 1
    canvas = np.zeros((size[1], size[0]), np.float32)
    span = max(ink_extent(lines))
    for line in lines:
        line = resample(line - low, max(1.0, pen.width / 2))
        draw_line(canvas, line, pen, rng, span)
    return canvas


def draw_line(canvas: np.ndarray, line: Polyline, pen: Pen, rng: np.random.Generator, span: float) -> None:
    """Add one polyline to `canvas` (maximum of coverages, so a stroke crossing itself is not darker)."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    starts = np.concatenate([[0.0], np.cumsum(steps)])
    total = float(starts[-1])
    positions, pressure = along_profile(total, rng, wavelength=0.5 * span + 1)
    _, density = along_profile(total, rng, wavelength=0.25 * span + 1)
    gap = None
    if rng.random() < pen.gap_chance and total > 6 * pen.gap_length:
        centre = rng.uniform(0.2, 0.8) * total
        gap = (centre - pen.gap_length / 2, centre + pen.gap_length / 2)
    across = rng.uniform(1 - pen.streaks, 1, 9) if pen.streaks > 0 else None
    radius = pen.width / 2
    reach = radius * (1 + pen.pressure) + 1.5
    for a, b, s0, length in zip(line[:-1], line[1:], starts[:-1], steps, strict=True):
        x0, y0 = np.floor(np.minimum(a, b) - reach).astype(int)
        x1, y1 = np.ceil(np.maximum(a, b) + reach).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        px, py = xs - a[0], ys - a[1]
        direction = (b - a) / max(length, 1e-6)
        t = np.clip(px * direction[0] + py * direction[1], 0, length)
        ox, oy = px - t * direction[0], py - t * direction[1]
        distance = np.hypot(ox, oy)
        s = s0 + t
        r = radius * (1 + pen.pressure * np.interp(s, positions, pressure))
        coverage = np.clip(r + 0.5 - distance, 0, 1) * (1 - pen.fade * (0.5 + 0.5 * np.interp(s, positions, density)))
        coverage *= np.minimum(1.0, 2 * r)  # thinner than a pixel: coverage, not width, carries the line
        if gap is not None:
            coverage[(s > gap[0]) & (s < gap[1])] = 0
        if across is not None:
            side = (ox * -direction[1] + oy * direction[0]) / np.maximum(r, 0.5)  # -1 … 1 across the stroke
            coverage *= np.interp(side, np.linspace(-1, 1, len(across)), across)
        region = canvas[y0 : y1 + 1, x0 : x1 + 1]
        np.maximum(region, coverage[: region.shape[0], : region.shape[1]], out=region)
