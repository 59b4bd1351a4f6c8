"""From colour to ink strength: flatten transparency, one polarity (dark ink on light), lighting divided out.

The result is a float map in [0, 1], 1 where a pixel is as dark as ink can be relative to the paper under it,
so that a stroke in a shadow and one in full light look the same to the stroke steps (`strokes`).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from app.preprocess.morphology import grow, running_extreme

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""RGB → luminance weights (ITU-R BT.601)."""
STROKE_SHADES = 64.0
"""Opaque pixels of an RGBA image spanning fewer gray levels than this (10th–90th percentile) are strokes."""
BACKGROUND_SIDE = 64
"""Longer side of the even smaller copy on which the paper's brightness is estimated."""
BACKGROUND_WINDOW = 0.3
"""Closing window, as a fraction of that copy's longer side: wider than a marker stroke, so strokes vanish."""
FLAT_PAPER = 0.08
"""Paper this much darker than the typical bright paper is shaded (ink, at least twice as dark, is not)..."""
FLAT_SHADED = 0.05
"""...and an image with less than this share of shaded paper has no shadows to mistake for ink."""
ENCLOSED_GAIN = 2.0
"""A pixel counts as enclosed ink when filling raises it by half its darkness below the paper..."""
ENCLOSED_ABS = 25.0
"""...or by this many gray levels (of 255), however dark its paper..."""
ENCLOSED_DEPTH = 3.0
"""...but darkness under this many gray levels is paper noise, never ink."""
EDGE_INK = 0.3
"""A border pixel this much darker than the paper there may be a stroke running off the edge..."""
EDGE_RUN = 0.15
"""...if the dark run along the border is at most this fraction of the side; longer runs are shadows."""


def flatten_alpha(values: np.ndarray) -> np.ndarray:
    """Composite an RGBA image onto an opaque backdrop chosen so that the strokes stay visible.

    A canvas export is strokes of one colour on fully transparent (usually black, 0,0,0,0) pixels: dropping
    alpha would make everything black. Such strokes go on the backdrop that contrasts with them (white for
    dark strokes, black for light ones), however much of the canvas they cover. Opaque content of many
    shades (a photo with transparent margins) has its own background, so its typical colour fills the
    transparent part.
    """
    if values.ndim != 3 or values.shape[2] != 4:
        return values
    colour, alpha = values[:, :, :3], values[:, :, 3] / 255.0
    if alpha.min() >= 1.0:
        return colour
    opaque = colour[alpha > 0.5]
    if opaque.size == 0:
        return np.full_like(colour, 255.0)  # (nearly) fully transparent: blank, reported as no digit later
    shades = opaque[:: max(1, len(opaque) // 4096)] @ LUMA
    darkest, median, lightest = np.percentile(shades, (10, 50, 90))
    if lightest - darkest < STROKE_SHADES:
        backdrop = np.float32(255.0 if median < 128.0 else 0.0)
    else:
        backdrop = np.median(opaque, axis=0).astype(np.float32)
    alpha = alpha[:, :, None]
    return colour * alpha + backdrop * (1.0 - alpha)


def dark_on_light(values: np.ndarray) -> np.ndarray:
    """Gray image (float32, 0–255) with dark ink on a light background, inverting light-on-dark images.

    The background is what the border mostly shows; ink is on the far side of the brightness range from it.
    For colour, the darkest channel (on light paper) or the brightest (on dark) is used: a yellow or red
    marker is dark in the blue or green channel though light in luminance.
    """
    if values.ndim == 2:
        return values if light_background(values) else 255.0 - values
    red, green, blue = values[:, :, 0], values[:, :, 1], values[:, :, 2]  # chained ufuncs: 20× min(axis=2)
    if light_background(values @ LUMA):
        return np.minimum(np.minimum(red, green), blue)
    return 255.0 - np.maximum(np.maximum(red, green), blue)


def light_background(luma: np.ndarray) -> bool:
    """True unless the border is both dark in absolute terms and nearer the image's dark extreme than its
    bright one.

    Photos of paper often have darker, shadowed borders and digits too small to move the percentiles, so a
    plain "which extreme is the border nearer" test misfires on them; a dark background (a chalkboard, a
    dark-mode canvas, MNIST itself) is at most half as bright as its ink.
    """
    height, width = luma.shape
    ring = max(1, min(height, width) // 20)
    border = np.concatenate(
        [luma[:ring].ravel(), luma[-ring:].ravel(), luma[:, :ring].ravel(), luma[:, -ring:].ravel()]
    )
    step = max(1, int(math.sqrt(luma.size / 8192)))  # a subsample is plenty for percentiles
    dark, bright = np.percentile(luma[::step, ::step], (0.5, 99.5))
    middle = float(np.median(border))
    return middle - dark >= bright - middle or middle > 0.5 * bright


def divide_background(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1]: 1 − pixel / brightness of the paper under it, where something dark is enclosed.

    Both are estimated on a small copy. The paper is the brighter of a grey closing (max then min filter)
    wider than most strokes, which keeps gradients, vignetting and broad shadows, and `fill_basins`, which
    also restores paper under strokes too thick for the closing. Dividing by it leaves ink equally dark in a
    shadow and in full light. A closing also fills narrow corners of shadows, but those, unlike strokes,
    connect to the border through pixels no lighter than themselves, so filling does not raise them: ink
    strength is kept in proportion to how much of a pixel's darkness filling explains (ENCLOSED_*).
    """
    height, width = gray.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    small = Image.fromarray(gray, mode="F")
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        small = small.resize(size, Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float32)
    window = 2 * int(BACKGROUND_WINDOW * max(values.shape) / 2) + 1
    closed = running_extreme(running_extreme(values, window, np.maximum), window, np.minimum)
    sample = gray[::2, ::2]  # finer than `values`, whose blur would make the rims of strokes look shaded
    bright = float(np.percentile(sample, 90))
    rims = grow(grow(grow(sample <= 0.5 * bright)))  # the soft edges of ink are not shade
    shaded = np.count_nonzero((sample < (1 - FLAT_PAPER) * bright) & ~rims) / sample.size
    if shaded < FLAT_SHADED:  # even paper (a canvas, a scan; ink is darker): no shadow to mistake for ink
        paper, enclosed = np.full_like(values, bright), np.ones_like(values)
    else:
        filled = fill_basins(values, closed)
        paper = np.maximum(closed, filled)  # filling also restores paper under strokes too wide for closing
        raised = filled - values
        # ×ENCLOSED_GAIN: a stroke running from light into shadow, only partly a basin where lit, counts fully
        enclosed = np.maximum(
            ENCLOSED_GAIN * raised / np.maximum(paper - values, ENCLOSED_DEPTH), raised / ENCLOSED_ABS
        )
        enclosed = running_extreme(np.clip(enclosed, 0.0, 1.0), 3, np.maximum)  # antialiased stroke rims too
    if factor > 1:
        paper, enclosed = (
            np.asarray(Image.fromarray(a, mode="F").resize((width, height), Image.Resampling.BILINEAR))
            for a in (paper, enclosed)
        )
    paper = np.maximum(paper, gray)  # ink is never brighter than its paper (the upsampled estimate may dip)
    return np.clip(1.0 - gray / np.maximum(paper, 1.0), 0.0, 1.0) * enclosed


def fill_basins(values: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """Grey-level fill of every dark region not connected to the border (reconstruction by erosion).

    Each stroke becomes as bright as the paper around it; anything dark that reaches the border (a shadow)
    stays. A short dark run along the border (a stroke running off the edge) is seeded with `rim`, the paper
    estimate, so it is still filled; a long one (a shadow) is seeded with itself and stays.
    """
    seeded = values.copy()
    for side in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        seeded[side] = _seed_edge(values[side], rim[side])
    # Start from the best straight path to each side (the brightest pixel met on the way is as high as the
    # fill can need there): the same result as starting from "everything full", in a few passes, not dozens.
    marker = np.minimum(
        np.minimum(np.maximum.accumulate(seeded, axis=0), np.maximum.accumulate(seeded[::-1], axis=0)[::-1]),
        np.minimum(np.maximum.accumulate(seeded, axis=1), np.maximum.accumulate(seeded[:, ::-1], axis=1)[:, ::-1]),
    )
    vertical, both = np.empty_like(marker), np.empty_like(marker)
    for iteration in range(sum(values.shape)):  # the erosion front advances one pixel per pass
        previous = marker.copy() if iteration % 4 == 3 else None
        vertical[:] = marker  # 3×3 minimum filter, separable, in place
        np.minimum(vertical[1:], marker[:-1], out=vertical[1:])
        np.minimum(vertical[:-1], marker[1:], out=vertical[:-1])
        both[:] = vertical
        np.minimum(both[:, 1:], vertical[:, :-1], out=both[:, 1:])
        np.minimum(both[:, :-1], vertical[:, 1:], out=both[:, :-1])
        np.maximum(both, values, out=marker)
        if previous is not None and np.array_equal(previous, marker):
            break
    return marker


def _seed_edge(edge: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """One border line of the fill marker: its own values, but short runs of ink (strokes) get the rim."""
    inky = np.concatenate(([False], edge < (1.0 - EDGE_INK) * rim, [False]))
    changes = np.flatnonzero(inky[1:] != inky[:-1]).reshape(-1, 2)  # [start, end) of each dark run
    seed = edge.copy()
    for start, end in changes:
        if end - start <= EDGE_RUN * edge.size:
            seed[start:end] = rim[start:end]
    return seed
