"""From colour to one gray image of dark ink on light paper: transparency flattened, one polarity, and the paper's
brightness (`bright_paper`) that later steps measure darkness against.

Uneven light and shadows are divided out next, by `background`; the facts both modules and the stroke steps share
(how dark a desk is, how faint ink can be and still hold a digit) are defined here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.preprocess.quantiles import median, percentile, percentiles

if TYPE_CHECKING:
    from app.preprocess.cues import CueNotes


LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""RGB → luminance weights (ITU-R BT.601)."""
STROKE_SHADES = 64.0
"""Opaque pixels of an RGBA image spanning fewer gray levels than this (10th–90th percentile) are strokes."""
DESK_DARK = 0.5
"""The desk past a photographed page is darker than this share of the bright paper (its 90th percentile)."""
FAINTEST_STROKES = 0.08
"""Ink whose strongest (its 99.9th percentile) is weaker than this holds no digit (`strokes.threshold_noise`); if
lifting the patches leaves none that strong, the patches stay (`background.lift_patches`; threshold split: one pencil
render more read right, rejected as blank before)."""


def flatten_alpha(values: np.ndarray) -> np.ndarray:
    """Composite a premultiplied-alpha (RGBa) image onto an opaque backdrop chosen so the strokes stay visible.

    A canvas export is strokes of one colour on fully transparent (usually black, 0,0,0,0) pixels: dropping
    alpha would make everything black. Such strokes go on the backdrop that contrasts with them (white for
    dark strokes, black for light ones), however much of the canvas they cover. Opaque content of many
    shades (a photo with transparent margins) has its own background, so its typical colour fills the
    transparent part. The shades are judged on at most ~4096 of the opaque pixels, evenly spread.

    `values` is uint8 H×W×4 with premultiplied colour (`decode.shrink` makes it), so compositing is one
    addition: colour × alpha + backdrop × (1 − alpha), and exact in uint8 for a white or black backdrop
    (premultiplied colour never exceeds alpha). Anything without an alpha channel is returned as it is.
    """
    if values.ndim != 3 or values.shape[2] != 4:
        return values
    # numpy on a strided channel, or broadcasting over a last axis of 3, costs 5-15x what it does on contiguous
    # planes (the strokes' composite below took ~1 ms on a 256-px canvas); OpenCV takes them apart contiguously
    premultiplied, alpha = values[:, :, :3], cv2.extractChannel(values, 3)
    if alpha.min() == 255:
        return premultiplied
    opaque_at = np.flatnonzero(alpha > 127)
    if opaque_at.size == 0:
        return np.full(premultiplied.shape, 255, np.uint8)  # (nearly) fully transparent: blank, no digit later
    opaque = values.reshape(-1, 4)[opaque_at[:: max(1, opaque_at.size // 4096)]].astype(np.float32)
    colour = opaque[:, :3] * (255.0 / opaque[:, 3:])  # un-premultiplied
    darkest, typical, lightest = percentiles(colour @ LUMA, (10, 50, 90))
    if lightest - darkest >= STROKE_SHADES:
        backdrop = np.median(colour, axis=0).astype(np.float32)
        return premultiplied + backdrop * (1.0 - alpha[:, :, None] * np.float32(1 / 255))
    if typical < 128.0:  # dark strokes: on white (colour + 255 − alpha; premultiplied colour never exceeds alpha)
        return cv2.add(cv2.cvtColor(values, cv2.COLOR_RGBA2RGB), cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB))
    return premultiplied  # light strokes: on black, which premultiplied colour already is


def dark_on_light(values: np.ndarray, notes: CueNotes | None = None) -> np.ndarray:
    """Gray image (0–255, the dtype of `values`: uint8 or float32) with dark ink on a light background,
    inverting light-on-dark images (`notes`, when given, records whether it did).

    The background is what the border mostly shows; ink is on the far side of the brightness range from it.
    For colour, the darkest channel (on light paper) or the brightest (on dark) is used: a yellow or red
    marker is dark in the blue or green channel though light in luminance.
    """
    light = light_background(values)
    if notes is not None:
        notes.inverted = not light
    if values.ndim == 3:
        # OpenCV on contiguous planes: 2.4× numpy's chained ufuncs on the strided channels, 60× min(axis=2)
        red, green, blue = cv2.split(values)
        if light:
            return cv2.min(cv2.min(red, green), blue)
        return 255 - cv2.max(cv2.max(red, green), blue)
    return values if light else 255 - values


def light_background(values: np.ndarray) -> bool:
    """True unless the background is both dark in absolute terms and nearer the image's dark extreme than its
    bright one. `values`: gray H×W or colour H×W×3 (judged by luminance).

    The background is judged twice, as what the border mostly shows and as what the whole image mostly shows,
    and is light if either looks light: a page photographed on a dark desk has a dark border but is mostly
    light, and a thick digit can cover much of a canvas but not most of its border. Photos of paper often have
    darker, shadowed borders and digits too small to move the percentiles, so a plain "which extreme is it
    nearer" test misfires on them; a dark background (a chalkboard, a dark-mode canvas, MNIST itself) is at
    most half as bright as its ink. The bright extreme is the 99.9th percentile: a thin chalk line can cover
    less than half a percent of the image, so the 99.5th (used before) was an unevenly lit board's lighter patch,
    not the chalk, and the board passed for light (4 of 9 chalk errors on the threshold split, where no digit
    render of another style changed sides, and 5 of the 2,100 non-digit renders did).
    """
    luma = values if values.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(values), cv2.COLOR_RGB2GRAY)
    height, width = luma.shape
    ring = max(1, min(height, width) // 20)
    border = np.concatenate([luma[:ring], luma[-ring:], luma[:, :ring], luma[:, -ring:]], axis=None)
    step = max(1, int(math.sqrt(luma.size / 8192)))  # a subsample is plenty for percentiles
    dark, typical, bright = percentiles(luma[::step, ::step], (0.5, 50, 99.9))
    return any(middle - dark >= bright - middle or middle > 0.5 * bright for middle in (median(border), typical))


def bright_paper(gray: np.ndarray) -> float:
    """The bright paper's brightness in `gray` (dark on light): its 90th percentile, over every 4th pixel each way
    (plenty for a percentile), the reference the rulings' contrast (`rulings.CONTRAST`) and the desk's darkness
    (DESK_DARK, in `strokes`) are shares of."""
    return percentile(gray[::4, ::4], 90)
