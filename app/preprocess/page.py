"""A photographed page found against the desk: the ink off it cleared, the digit turned upright by its tilt.

People write upright on the page, and a phone held at an angle turns page and digit alike: the network trained on
digits turned at most ±10°, and the shipped model reads MNIST test digits turned ±20° 1.4 points worse than upright
ones (±25°: 3.3 points). Where the desk shows past the page's edges, those edges give the page's own rows and
columns: the outline of the bright page against the darker desk (`ink.DESK_DARK`, the desk's darkness the other
steps use) is followed, and the directions of its straight stretches away from the image's border, folded modulo
90° (a page's edges are parallel or perpendicular), agree when they are a page's. A lighting gradient's or a cloud
of texture's outline wanders and does not agree; paper less a hard shadow is not convex (DENT); paper on both sides
of something dark, a stroke running off the image, is no page on a desk (ELSEWHERE). Then no page is found and
nothing changes.

Once found, the page also says where the digit can be: the background division leaves slivers of ink along the
page's edge (the desk's darkness against the paper's estimate), and such a sliver, stronger and wider than a faint
pen digit, set the strokes' level (`strokes.threshold_noise`) so that the digit fell under it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from app.preprocess.digit import crop_to_ink
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
DENT = 0.05
"""The page's outline nowhere reaches in from its convex hull deeper than this share of the image's shorter side: a
page (a quadrilateral, cut by the frame) is convex, while paper less a hard-edged shadow falling from the image's
side (as dark as a desk where the light is dim) has a notch, and paper beside a thick stroke running off the image a
slit, whose straight edges would otherwise pass for the page's (threshold renders: 0.13–0.37 for those shadows on the
photo, pen, pencil and marker styles; 0.02 for the median tilted page)."""
PAGE_SHARE = (0.2, 0.97)
"""The page covers at least the first share of the image and at most the second (above it the desk is at most a
sliver in a corner, too short to read)."""
ELSEWHERE = 0.05
"""At most this share of the image may be bright outside the page (light spots on the desk). More, and the dark
region reaching the image's edge has paper on both sides: a thick stroke running off the image (a "1" drawn from
edge to edge), which would otherwise pass for the desk and be cleared as such."""
MIN_TILT_DEG = 1.0
"""Tilts below this are left alone: resampling would only blur the digit."""
MAX_TILT_DEG = 30.0
"""Tilts above this are left alone: at 45° it is no longer clear which edges are the page's rows."""
EDGE_MARGIN = 2
"""Pixels along the page's edge that count as off the page (the edge's own blur and the division's rim there)."""


@dataclass(frozen=True)
class Page:
    """A photographed page found against the desk (`find_page`).

    `tilt`: degrees it is turned clockwise, as the image shows it; None when within MIN_TILT_DEG of square or
    beyond MAX_TILT_DEG. `inside`: float32 0/1 over the image, 1 on the page less EDGE_MARGIN px along its edge.
    """

    tilt: float | None
    inside: np.ndarray


def find_page(gray: np.ndarray, bright: float | None = None) -> Page | None:
    """The page in `gray` (dark on light, uint8 or float32), from its edges against a darker desk; None when no
    desk reaches the image's edge or the bright region's outline is not a page's (see the module's docstring).
    `bright`: `ink.bright_paper(gray)`, when the caller has it already."""
    pixels = as_uint8(gray)
    desk = DESK_DARK * (bright_paper(gray) if bright is None else bright)
    if min(pixels[0].min(), pixels[-1].min(), pixels[:, 0].min(), pixels[:, -1].min()) > desk:
        return None  # no desk reaches the image's edge: no page edge to read (the common case, and cheap)
    paper = cv2.morphologyEx((pixels > desk).view(np.uint8), cv2.MORPH_CLOSE, square(5))  # ink back in its page
    contours, _ = cv2.findContours(paper, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    areas = [cv2.contourArea(contour) for contour in contours]
    largest = int(np.argmax(areas))
    outline = contours[largest][:, 0, :].astype(np.float32)
    height, width = pixels.shape
    if not PAGE_SHARE[0] <= areas[largest] / (height * width) <= PAGE_SHARE[1]:
        return None
    if sum(areas) - areas[largest] > ELSEWHERE * height * width:
        return None  # paper on both sides of the "desk": a stroke running off the image, not a page's edge
    if _deepest_dent(contours[largest]) > DENT * min(height, width):
        return None
    folded = _folded_edges(outline, height, width)
    if folded is None or abs(folded) < AGREEMENT:
        return None
    tilt = math.degrees(float(np.angle(folded)) / 4)
    inside = np.zeros((height, width), np.uint8)
    cv2.drawContours(inside, contours, largest, 1, thickness=cv2.FILLED)
    inside = cv2.erode(inside, square(2 * EDGE_MARGIN + 1)).astype(np.float32)
    return Page(tilt if MIN_TILT_DEG <= abs(tilt) <= MAX_TILT_DEG else None, inside)


def _deepest_dent(contour: np.ndarray) -> float:
    """How far (px) the outline `contour` (OpenCV's K×1×2 int32 points) reaches in from its convex hull."""
    hull = cv2.convexHull(contour, returnPoints=False)
    try:
        defects = cv2.convexityDefects(contour, hull)
    except cv2.error:  # a hull OpenCV finds not monotonous (a degenerate outline): no page to trust
        return math.inf
    return 0.0 if defects is None else float(defects.reshape(-1, 4)[:, 3].max()) / 256  # 8 fractional bits


def _folded_edges(outline: np.ndarray, height: int, width: int) -> complex | None:
    """The mean of exp(4iθ) over the directions θ of `outline`'s straight chords (K×2 x, y points), chords on
    the image's border left out (the frame cuts the page there): its angle / 4 is the tilt they agree on, its
    length how well they agree. None when the outline away from the border is shorter than MIN_EDGE."""
    chords = np.roll(outline, -EDGE_STEP, axis=0) - outline
    middles = outline + chords / 2
    inside = (middles[:, 0] > 2) & (middles[:, 0] < width - 3) & (middles[:, 1] > 2) & (middles[:, 1] < height - 3)
    straight = inside & (np.hypot(chords[:, 0], chords[:, 1]) > 0.8 * EDGE_STEP)  # not around a corner
    if np.count_nonzero(straight) < MIN_EDGE * min(height, width):
        return None
    return complex(np.exp(4j * np.arctan2(chords[straight, 1], chords[straight, 0])).mean())


def clear_desk(ink: np.ndarray, page: Page | None) -> np.ndarray:
    """`ink` with what lies off the page (and along its edge) set to 0; `ink` itself when no page was found.

    The background division leaves slivers of ink along a page's edge, where the desk's darkness meets the
    paper's estimate; strong and wide, they set the strokes' level and a faint digit fell under it."""
    return ink if page is None else ink * page.inside


def turn_upright(ink: np.ndarray, page: Page | None) -> np.ndarray:
    """`ink` (float32, cropped to its ink) turned back by the page's tilt (counter-clockwise as the image shows
    it) and cropped to its ink again; `ink` itself when no page or no tilt was found."""
    if page is None or page.tilt is None:
        return ink
    height, width = ink.shape
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), page.tilt, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    turned_width, turned_height = int(height * sin + width * cos) + 2, int(height * cos + width * sin) + 2
    rotation[:, 2] += (turned_width - width) / 2, (turned_height - height) / 2
    return crop_to_ink(
        cv2.warpAffine(ink, rotation, (turned_width, turned_height), flags=cv2.INTER_LINEAR, borderValue=0)
    )
