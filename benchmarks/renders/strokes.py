"""Ink coverage of a source drawing at upload resolution: smooth upscaling, marker dilation, tilt, placement.

A *source* is a white-on-black uint8 drawing whose height is the 28-unit MNIST frame (a 28×28 MNIST digit, or a
112-px-high non-digit drawn at 4 px per unit, possibly wider than tall). Coverage maps are float32 in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

FRAME_UNITS = 28
"""Height of the MNIST frame in units; a typical digit is 20 units tall in it."""


def stroke_mask(digit: np.ndarray, box: int, rng: np.random.Generator, grow: float = 0.0) -> np.ndarray:
    """Ink coverage in [0, 1] of the source drawn `box` pixels high (the 28-unit frame scaled, margins included).

    The source is upscaled bicubically, blurred a little (pen tip) and soft-thresholded at a random level,
    which varies stroke width like different pens do. `grow` (a fraction of the frame) dilates the strokes
    by a disk first, as a felt-tip marker would.
    """
    if grow > 0:
        digit = dilate(digit, grow, rng)
    scale = box / FRAME_UNITS
    height, width = digit.shape
    size = (box, box) if width == height else (max(1, round(width * box / height)), box)
    image = Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC)
    image = image.filter(ImageFilter.GaussianBlur(scale * rng.uniform(0.35, 0.7)))
    values = np.asarray(image, dtype=np.float32) / 255
    peak = max(float(values.max()), 1e-3)
    level = rng.uniform(0.3, 0.55) * peak
    edge = max(0.02, 0.6 / scale) * peak  # about one pixel of antialiasing whatever the size
    return np.clip((values - level) / edge + 0.5, 0, 1)


def dilate(digit: np.ndarray, grow: float, rng: np.random.Generator) -> np.ndarray:
    """The source's strokes thickened by a disk of radius grow×28 units, drawn at 4 px per unit for round ends."""
    height, width = digit.shape
    fine_size = (112, 112) if width == height else (max(1, round(width * 112 / height)), 112)
    fine = np.asarray(Image.fromarray(digit).resize(fine_size, Image.Resampling.BICUBIC), dtype=np.float32)
    inked = (fine > rng.uniform(90, 150)).astype(np.uint8)
    radius = grow * 112
    reach = int(math.ceil(radius))
    padded = np.pad(inked, reach)
    out = np.zeros_like(inked)
    rows, cols = inked.shape
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= padded[reach + dy : reach + dy + rows, reach + dx : reach + dx + cols]
    small = Image.fromarray(out * 255).resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def transform_mask(mask: np.ndarray, rng: np.random.Generator, max_degrees: float, max_stretch: float) -> np.ndarray:
    """Tilt the strokes by up to max_degrees and stretch one axis by up to ±max_stretch (hands vary)."""
    image = Image.fromarray((mask * 255).astype(np.uint8))
    image = image.rotate(rng.uniform(-max_degrees, max_degrees), resample=Image.Resampling.BICUBIC, expand=True)
    stretch = 1 + rng.uniform(-max_stretch, max_stretch)
    width, height = image.size
    size = (max(1, round(width * stretch)), max(1, round(height / stretch)))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255


def place(mask: np.ndarray, width: int, height: int, rng: np.random.Generator, centred: float = 0.0) -> np.ndarray:
    """A height×width coverage map with the strokes of `mask` entirely inside, at a random position.

    The mask is cropped to its ink and shrunk if it would not fit; `centred` in [0, 1] pulls it toward the
    middle.
    """
    rows, cols = np.nonzero(mask > 0.01)
    if len(rows):
        mask = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    margin = 2 + min(width, height) // 50
    room_w, room_h = width - 2 * margin, height - 2 * margin
    mh, mw = mask.shape
    if mh > room_h or mw > room_w:
        factor = min(room_h / mh, room_w / mw)
        size = (max(1, int(mw * factor)), max(1, int(mh * factor)))
        mask = np.asarray(Image.fromarray(mask, mode="F").resize(size, Image.Resampling.BILINEAR))
        mh, mw = mask.shape
    fy, fx = rng.uniform(0, 1, 2) * (1 - centred) + centred / 2
    y, x = margin + int(fy * (room_h - mh)), margin + int(fx * (room_w - mw))
    out = np.zeros((height, width), np.float32)
    out[y : y + mh, x : x + mw] = mask
    return out


def frame_for(width: int, height: int, fraction: float) -> int:
    """The 28×28-frame size making a typical digit (20 px of 28 tall) span `fraction` of the shorter side."""
    return max(28, round(min(width, height) * fraction * 28 / 20))
