"""What the digit is drawn with: each medium returns the ink coverage of a posed source and its colour.

Coverage maps are tight (the drawing plus a small margin); the styles place them on a page with
`strokes.place`. `height_px` is the drawing's larger side in output pixels (a digit's height: MNIST digits are
taller than wide, save a few); `fit` is the (width, height) the drawing must fit in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.renders.centreline import centrelines
from benchmarks.renders.inks import DARK_INKS, LIGHT_INKS, MARKER_INKS, PEN_INKS
from benchmarks.renders.paper import tooth
from benchmarks.renders.pen import Pen, draw, ink_extent, pose
from benchmarks.renders.strokes import stroke_mask, transform_mask

PEN_WIDTH = (0.012, 0.026)
"""Pen width as a fraction of the drawn digit's height; with ±15 % pressure the stroke stays within 1–3 %."""
PENCIL_WIDTH = (0.015, 0.035)
CHALK_WIDTH = (0.035, 0.07)


@dataclass(frozen=True)
class Drawn:
    """Ink coverage (float32, tight) and the ink's reflectance per RGB channel."""

    coverage: np.ndarray
    ink: np.ndarray


def choose(rng: np.random.Generator, options: Sequence[Sequence[float]]) -> np.ndarray:
    """One of `options` as a float32 array."""
    return np.array(options[int(rng.integers(len(options)))], np.float32)


def pen(
    source: np.ndarray, rng: np.random.Generator, height_px: float, fit: tuple[float, float], max_degrees: float = 10
) -> Drawn:
    """Ballpoint (pressure and density vary, small skips) or fineliner (even), blue or black, 1–3 % wide."""
    fineliner = rng.random() < 0.4
    fraction = rng.uniform(*PEN_WIDTH)
    lines = pose(centrelines(source), height_px, rng, max_degrees, 0.1, fit)
    reference = drawn_height(lines)
    tool = Pen(
        width=max(1.0, fraction * reference),
        pressure=rng.uniform(0.0, 0.06) if fineliner else rng.uniform(0.05, 0.15),
        fade=rng.uniform(0.0, 0.1) if fineliner else rng.uniform(0.1, 0.35),
        gap_chance=0.05 if fineliner else 0.3,
        gap_length=rng.uniform(0.01, 0.025) * reference,
    )
    return Drawn(draw(lines, tool, rng), choose(rng, PEN_INKS) * rng.uniform(0.85, 1.15))


def drawn_height(lines: list[np.ndarray]) -> float:
    """The posed drawing's height, which stroke widths are relative to (half its width for flat drawings such as
    a minus sign, which have next to no height)."""
    width, height = ink_extent(lines)
    return max(height, width / 2)


def pencil(
    source: np.ndarray, rng: np.random.Generator, height_px: float, fit: tuple[float, float], max_degrees: float = 10
) -> Drawn:
    """Graphite: grey, low contrast, grain from the paper's tooth and streaks along the stroke."""
    width = max(1.2, rng.uniform(*PENCIL_WIDTH) * height_px)
    tool = Pen(
        width=width,
        pressure=rng.uniform(0.1, 0.25),
        fade=rng.uniform(0.1, 0.3),
        gap_chance=0.1,
        gap_length=rng.uniform(0.01, 0.02) * height_px,
        streaks=rng.uniform(0.25, 0.55),
    )
    lines = pose(centrelines(source), height_px, rng, max_degrees, 0.1, fit)
    coverage = draw(lines, tool, rng)
    grain = tooth(coverage.shape[1], coverage.shape[0], rng)
    coverage *= np.clip(0.8 + rng.uniform(0.3, 0.6) * grain, 0.2, 1)
    graphite = rng.uniform(0.35, 0.62) * np.array([0.98, 1.0, 1.03], np.float32)  # slightly cool, shiny grey
    return Drawn(coverage, graphite)


def marker(source: np.ndarray, rng: np.random.Generator, height_px: float, max_degrees: float = 10) -> Drawn:
    """A felt-tip or a soft ballpoint from the upscaled source (as the `marker` and `photo` styles draw)."""
    box = max(28, round(height_px * 28 / 20))
    grow = rng.uniform(0.0, 0.025)
    coverage = transform_mask(stroke_mask(source, box, rng, grow=grow), rng, max_degrees, 0.1)
    inks = MARKER_INKS if rng.random() < 0.5 else DARK_INKS[:3]
    return Drawn(coverage, choose(rng, inks))


def chalk(
    source: np.ndarray, rng: np.random.Generator, height_px: float, fit: tuple[float, float], max_degrees: float = 10
) -> Drawn:
    """A chalk stick: wide, broken by the board's grain, streaky; white or pastel."""
    width = max(2.0, rng.uniform(*CHALK_WIDTH) * height_px)
    tool = Pen(width=width, pressure=rng.uniform(0.1, 0.25), fade=rng.uniform(0.1, 0.3), streaks=rng.uniform(0.3, 0.6))
    lines = pose(centrelines(source), height_px, rng, max_degrees, 0.1, fit)
    coverage = draw(lines, tool, rng)
    grain = tooth(coverage.shape[1], coverage.shape[0], rng)
    ragged = np.clip(2 * (coverage - 0.5 + 0.4 * grain) + 0.5, 0, 1)  # edges follow the board's grain...
    coverage = np.where(coverage > 0.05, ragged, 0)  # ...but never leave the stroke
    coverage *= np.clip(0.75 + rng.uniform(0.5, 0.9) * grain, 0, 1)
    return Drawn(coverage, choose(rng, LIGHT_INKS))


def paint_marker(
    source: np.ndarray, rng: np.random.Generator, height_px: float, fit: tuple[float, float], max_degrees: float = 10
) -> Drawn:
    """A light paint marker on a dark surface: smooth, even, 2–5 % wide."""
    tool = Pen(width=max(1.5, rng.uniform(0.02, 0.05) * height_px), pressure=0.05, fade=rng.uniform(0.0, 0.1))
    lines = pose(centrelines(source), height_px, rng, max_degrees, 0.1, fit)
    return Drawn(draw(lines, tool, rng), choose(rng, LIGHT_INKS))
