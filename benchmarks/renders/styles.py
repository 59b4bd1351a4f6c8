"""The digit styles by name, and `render`, the reproducible entry point for one digit in one style."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.renders.classic import render_canvas, render_marker, render_mnist, render_photo, render_sheet
from benchmarks.renders.handwriting import render_grid, render_pen, render_pencil
from benchmarks.renders.phone import render_chalk, render_tilted
from benchmarks.renders.splits import digit_rng

Renderer = Callable[[np.ndarray, np.random.Generator], bytes]
"""(source drawing, seeded generator) → bytes of an image file."""

CLASSIC_STYLES: dict[str, Renderer] = {
    "mnist": render_mnist,
    "photo": render_photo,
    "canvas": render_canvas,
    "sheet": render_sheet,
    "marker": render_marker,
}
"""The first styles (strokes from the upscaled digit), which the service read at ≥ 98 % when they were added."""
NEW_STYLES: dict[str, Renderer] = {
    "pen": render_pen,
    "pencil": render_pencil,
    "grid": render_grid,
    "tilted": render_tilted,
    "chalk": render_chalk,
}
"""Everyday writing the first styles missed (issue 12): thin pens, pencil, ruled paper, tilted shots, light on dark."""
STYLES: dict[str, Renderer] = {**CLASSIC_STYLES, **NEW_STYLES}
"""Every digit style; the order is fixed (benchmark seeds depend on each style's position)."""


def check_style(style: str) -> str:
    """`style` itself, or a ValueError naming the valid ones."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    return style


def render(style: str, digit: np.ndarray, seed: int, split: str = "test") -> bytes:
    """Render `digit` (28×28 uint8, white on black) in `style`, reproducibly for a given seed and split.

    The digit must come from the split's pool (`digit_pool(split)`); `split` picks the random stream.
    """
    return STYLES[check_style(style)](np.ascontiguousarray(digit, dtype=np.uint8), digit_rng(seed, split))
