"""Source drawings for non-digits: anything drawn into the 28-unit frame the digit styles expect.

A source is white-on-black uint8 whose height is the frame: MNIST digits are 28 px high (1 px per unit);
drawings made here are 112 px high (4 px per unit, `SCALE`), with the ink fitted in the middle 20 units like
MNIST's digits, and may be wider than tall (words, numbers).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.renders.centreline import Polyline, Sketch, sketch
from benchmarks.renders.pen import Pen, draw

SCALE = 4
"""Pixels per frame unit of the sources made here."""
INK_UNITS = 20
"""Ink fits in 20 of the 28 units, as in MNIST."""


def frame_source(coverage: np.ndarray, wide: bool = False) -> np.ndarray:
    """A tight coverage map fitted into the frame: inside a 20×20-unit box (`wide`: 20 units high, any width)."""
    rows, cols = np.nonzero(coverage > 0.02)
    coverage = coverage[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = coverage.shape
    room = INK_UNITS * SCALE
    factor = room / height if wide else room / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    fitted = np.asarray(Image.fromarray(coverage.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    frame_h = 28 * SCALE
    frame_w = max(frame_h, size[0] + 8 * SCALE)
    out = np.zeros((frame_h, frame_w), np.float32)
    top, left = (frame_h - size[1]) // 2, (frame_w - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = fitted
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def stroke_source(
    lines: list[Polyline], rng: np.random.Generator, wide: bool = False, width: tuple[float, float] = (2.0, 3.2)
) -> Sketch:
    """Lines (any units) drawn with an MNIST-like stroke (`width` units of a 20-unit drawing) as a source that
    remembers its lines."""
    points = np.concatenate(lines)
    span = points.max(0) - points.min(0)
    extent = span[1] if wide else max(span)
    factor = INK_UNITS * SCALE / max(extent, 1e-3)
    tool = Pen(width=rng.uniform(*width) * SCALE, pressure=0.1)
    return sketch(frame_source(draw([line * factor for line in lines], tool, rng), wide), lines)


def digits_side_by_side(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A multi-digit number from 28×28 MNIST digits: cropped to their ink columns, a small random gap apart,
    each nudged up or down a little, as a 28-px-high source."""
    parts = []
    for digit in digits:
        cols = np.nonzero(digit.max(axis=0) > 30)[0]
        part = digit[:, cols.min() : cols.max() + 1] if len(cols) else digit
        parts.append(np.roll(part, int(rng.integers(-2, 3)), axis=0))
        parts.append(np.zeros((28, int(rng.integers(1, 6))), np.uint8))
    body = np.concatenate(parts[:-1], axis=1)
    return np.pad(body, ((0, 0), (4, 4)))


def mnist_format(source: np.ndarray) -> np.ndarray:
    """A source as MNIST prepared its digits: ink fitted in a 20×20 box, centre of mass at the middle of 28×28."""
    values = source.astype(np.float32) / 255
    rows, cols = np.nonzero(values > 0.02)
    values = values[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = values.shape
    factor = 20 / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.clip(np.asarray(Image.fromarray(values, mode="F").resize(size, Image.Resampling.LANCZOS)), 0, 1)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    mass = max(float(small.sum()), 1e-6)
    centre_y, centre_x = float((ys * small).sum() / mass), float((xs * small).sum() / mass)
    top = int(np.clip(round(14 - centre_y), 0, 28 - size[1]))
    left = int(np.clip(round(14 - centre_x), 0, 28 - size[0]))
    out = np.zeros((28, 28), np.float32)
    out[top : top + size[1], left : left + size[0]] = small
    return (out * 255).round().astype(np.uint8)
