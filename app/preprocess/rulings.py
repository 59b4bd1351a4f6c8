"""Printed rulings (squared and lined paper) crossing the digit, found as long straight thin lines and erased.

On the gray working copy (dark ink on light paper), before the paper's light is divided out: thin dark features
(a black-hat) that run straight across nearly the whole image, near-horizontal or near-vertical (a photographed
page is tilted a few degrees), at least two of them parallel, are a ruling. A digit's strokes never span the
image; a single full-length stroke (a "1" filling a canvas) has no parallel partner. Each family of lines is
erased by a closing across the lines, in a frame rotated so the lines are axis-aligned, only within a few
pixels of the lines: paper brightness comes back under the lines, and digit strokes crossing them survive
(a stroke running exactly along a ruling is thin there too, and is lost with it).

Uploads without rulings pay only the first test (a black-hat and a few small binary filters, ~0.05 ms).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.preprocess.quantiles import percentile

CONTRAST = 0.04
"""A thin dark feature is at least this much darker than the paper (fraction of its brightness)."""
THIN = 5
"""Black-hat window (px of the working copy): rulings are at most ~3 px wide there."""
SQUEEZE = 4
"""Lines are looked for on every SQUEEZE-th column (row) only: they cross them all, strokes shrink, and every
test costs a quarter (a ruling tilted 8° drifts half a pixel from one kept column to the next)."""
RUN = 4
"""A ruling leaves runs at least this long (squeezed px; 16 px of the working copy) along its direction."""
SPAN = 0.9
"""Runs along a direction must cover this share of the image across it for rulings to be looked for."""
MAX_TILT = math.radians(8)
"""Rulings lie within this angle of horizontal or vertical (photographed pages: ±6°, scans: ±1.5°)."""
VOTES = 0.5
"""A candidate line gathers thin dark pixels along at least this share of the image's extent."""
ALONG = 0.6
"""A ruling covers at least this share of its row in the rotated frame (the digit crossing it, the rest)."""
MIN_LINES = 2
"""Parallel lines needed before a family is erased; once one family is, a single line across the other (the
margin of a lined page) is enough."""
BAND = 2
"""Pixels either side of a ruling's row that the closing may change."""


def erase_rulings(gray: np.ndarray) -> np.ndarray:
    """`gray` (uint8 or float32, dark on light) with printed ruling lines replaced by the paper around them;
    `gray` itself when it has none."""
    level = CONTRAST * percentile(gray[::4, ::4], 90)
    out = gray
    angles = {horizontal: _family_angle(gray, level, horizontal) for horizontal in (True, False)}
    if angles[True] is None and angles[False] is None:
        return gray
    for horizontal, angle in angles.items():
        if angle is None:  # a lone line across a ruled page (a margin) goes too; a lone stroke elsewhere stays
            angle = _family_angle(gray, level, horizontal, lines=1)
        if angle is not None:
            out = _erase_family(out.astype(np.float32, copy=False), level, angle, horizontal)
    return out


def _thin_dark(gray: np.ndarray, level: float, kernel: tuple[int, int]) -> np.ndarray:
    """uint8 0/1: pixels at least `level` darker than the closing of `gray` by a `kernel` (rows, columns)."""
    gray = gray if gray.dtype == np.uint8 else np.clip(gray, 0, 255).astype(np.uint8)
    hat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, np.ones(kernel, np.uint8))
    return cv2.threshold(hat, level, 1, cv2.THRESH_BINARY)[1]


def _family_angle(gray: np.ndarray, level: float, horizontal: bool, lines: int = MIN_LINES) -> float | None:
    """Degrees to rotate by (counter-clockwise) so one family's lines (near-horizontal or near-vertical) are
    axis-aligned; None unless at least `lines` distinct parallel lines run across the image."""
    height, width = gray.shape
    if horizontal:
        squeezed = np.ascontiguousarray(gray[:, ::SQUEEZE])  # every SQUEEZE-th column: lines cross them all
        thin = _thin_dark(squeezed, level, (THIN, 1))
        runs = cv2.erode(cv2.dilate(thin, np.ones((3, 1), np.uint8)), np.ones((1, RUN), np.uint8))
    else:
        squeezed = np.ascontiguousarray(gray[::SQUEEZE])
        thin = _thin_dark(squeezed, level, (1, THIN))
        runs = cv2.erode(cv2.dilate(thin, np.ones((1, 3), np.uint8)), np.ones((RUN, 1), np.uint8))
    if runs.any(axis=0 if horizontal else 1).mean() < SPAN:
        return None
    extent = runs.shape[1] if horizontal else runs.shape[0]
    squeezed_tilt = math.atan(SQUEEZE * math.tan(MAX_TILT))  # tilts look SQUEEZE× steeper on the squeezed copy
    if horizontal:
        ranges = [(math.pi / 2 - squeezed_tilt, math.pi / 2 + squeezed_tilt)]
    else:
        ranges = [(0.0, squeezed_tilt), (math.pi - squeezed_tilt, math.pi)]
    found = []
    for low, high in ranges:
        peaks = cv2.HoughLines(runs, 1, math.pi / 360, int(VOTES * extent), min_theta=low, max_theta=high)
        if peaks is not None:
            found.extend((float(rho), float(theta)) for rho, theta in peaks[:, 0])
    if not found:
        return None
    tilts = [
        theta - math.pi / 2 if horizontal else (theta if theta < math.pi / 2 else theta - math.pi) for _, theta in found
    ]
    tilt = float(np.median(tilts))
    positions = sorted(
        abs(rho) for (rho, _), line_tilt in zip(found, tilts, strict=True) if abs(line_tilt - tilt) < math.radians(4)
    )
    distinct = sum(1 for k, rho in enumerate(positions) if k == 0 or rho - positions[k - 1] > 2 * BAND)
    if distinct < lines:
        return None
    return math.degrees(math.atan(math.tan(tilt) / SQUEEZE))


def _erase_family(gray: np.ndarray, level: float, angle: float, horizontal: bool) -> np.ndarray:
    """Close across one family's lines (rotated by `angle` to lie along rows or columns) within BAND px of them."""
    height, width = gray.shape
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(gray, rotation, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    kernel = (THIN, 1) if horizontal else (1, THIN)
    share = _thin_dark(turned, level, kernel).mean(axis=1 if horizontal else 0)  # of each row (column) on a line
    on = share >= ALONG
    if not on.any():
        return gray
    band = cv2.dilate(on.astype(np.uint8).reshape(-1, 1), np.ones((2 * BAND + 1, 1), np.uint8)).ravel() > 0
    lift = cv2.morphologyEx(turned, cv2.MORPH_CLOSE, np.ones(kernel, np.uint8)) - turned  # ≥ 0 on dark lines
    lift *= band[:, None] if horizontal else band[None, :]
    back = cv2.invertAffineTransform(rotation)
    return gray + cv2.warpAffine(lift, back, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
