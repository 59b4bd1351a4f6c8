"""A photographed page's tilt, read off its edges against the desk, and the digit turned upright by it.

People write upright on the page, and a phone held at an angle turns page and digit alike: a digit turned 20°
reads worse (the network trained on digits turned at most ±10°; the shipped model reads MNIST test digits turned
by 20° 1.3–1.4 points worse than upright ones). Where the desk shows past the page's edges, those edges give the
page's own rows and columns: the outline of the bright page against the darker desk (`ink.DESK_DARK`, the desk's
darkness the other steps use) is followed, and the directions of its straight stretches away from the image's
border, folded modulo 90° (a page's edges are parallel or perpendicular), agree when they are a page's. A
lighting gradient's or a cloud of texture's outline wanders and does not agree, and paper less a hard shadow is
not convex (CONVEX); then nothing is turned.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.preprocess.ink import DESK_DARK, bright_paper
from app.preprocess.morphology import as_uint8, square

EDGE_STEP = 6
"""Pixels of the outline between the two ends of each chord whose direction is taken (shorter chords read the
pixel grid's staircase, longer ones cut the page's corners)."""
MIN_EDGE = 0.5
"""The page's outline away from the image's border must be at least this share of the image's shorter side."""
AGREEMENT = 0.7
"""How closely the chords' directions (folded modulo 90°) must agree: the length of their mean unit vector on the
circle of 4 × the angle, 1 when all are parallel or perpendicular. A page's four straight edges, bent a little by
perspective, give 0.8–1.0; a wandering outline far less."""
CONVEX = 0.97
"""The page's outline must enclose at least this share of its convex hull: a page (a quadrilateral, cut by the
frame) is convex, while paper less a hard-edged shadow falling from the image's side (as dark as a desk where the
light is dim) has a notch, whose straight edges would otherwise pass for the page's (threshold renders of the
photo, pen, pencil and marker styles: 0.89–0.97 for those shadows; tilted pages 0.97–1.0)."""
PAGE_SHARE = (0.2, 0.97)
"""The page covers at least the first share of the image and at most the second (above it the desk is at most a
sliver in a corner, too short to read)."""
MIN_TILT_DEG = 1.0
"""Tilts below this are left alone: resampling would only blur the digit."""
MAX_TILT_DEG = 30.0
"""Tilts above this are left alone: at 45° it is no longer clear which edges are the page's rows."""


def page_tilt(gray: np.ndarray) -> float | None:
    """Degrees the page in `gray` (dark on light, uint8 or float32) is turned clockwise, as the image shows it,
    from its edges against a darker desk; None when no desk shows, the outline is not a page's, or the tilt is
    below MIN_TILT_DEG or above MAX_TILT_DEG."""
    pixels = as_uint8(gray)
    desk = DESK_DARK * bright_paper(pixels)
    if min(pixels[0].min(), pixels[-1].min(), pixels[:, 0].min(), pixels[:, -1].min()) > desk:
        return None  # no desk reaches the image's edge: no page edge to read (the common case, and cheap)
    page = cv2.morphologyEx((pixels > desk).view(np.uint8), cv2.MORPH_CLOSE, square(5))  # ink back in its page
    contours, _ = cv2.findContours(page, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    areas = [cv2.contourArea(contour) for contour in contours]
    outline = contours[int(np.argmax(areas))][:, 0, :].astype(np.float32)
    height, width = pixels.shape
    area = max(areas)
    if not PAGE_SHARE[0] <= area / (height * width) <= PAGE_SHARE[1]:
        return None
    if area < CONVEX * cv2.contourArea(cv2.convexHull(outline)):
        return None
    return _edge_tilt(outline, height, width)


def _edge_tilt(outline: np.ndarray, height: int, width: int) -> float | None:
    """The tilt the straight stretches of a closed `outline` (K×2 x, y points) agree on, chords on the image's
    border left out (the frame cuts the page there); see page_tilt."""
    chords = np.roll(outline, -EDGE_STEP, axis=0) - outline
    middles = outline + chords / 2
    inside = (middles[:, 0] > 2) & (middles[:, 0] < width - 3) & (middles[:, 1] > 2) & (middles[:, 1] < height - 3)
    straight = inside & (np.hypot(chords[:, 0], chords[:, 1]) > 0.8 * EDGE_STEP)  # not around a corner
    if np.count_nonzero(straight) < MIN_EDGE * min(height, width):
        return None
    folded = np.exp(4j * np.arctan2(chords[straight, 1], chords[straight, 0])).mean()
    if abs(folded) < AGREEMENT:
        return None
    tilt = math.degrees(float(np.angle(folded)) / 4)
    return tilt if MIN_TILT_DEG <= abs(tilt) <= MAX_TILT_DEG else None


def turn_upright(ink: np.ndarray, tilt: float | None) -> np.ndarray:
    """`ink` (float32) turned back by a `page_tilt` (counter-clockwise as the image shows it), on a canvas large
    enough to hold all of it; `ink` itself when `tilt` is None."""
    if tilt is None:
        return ink
    height, width = ink.shape
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    turned_width, turned_height = int(height * sin + width * cos) + 2, int(height * cos + width * sin) + 2
    rotation[:, 2] += (turned_width - width) / 2, (turned_height - height) / 2
    return cv2.warpAffine(ink, rotation, (turned_width, turned_height), flags=cv2.INTER_LINEAR, borderValue=0)
