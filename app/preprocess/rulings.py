"""Printed rulings (squared and lined paper) crossing the digit, found as long straight thin lines and erased.

On the gray working copy (dark ink on light paper), before the paper's light is divided out: thin dark features
(a black-hat) that run straight across nearly the whole image, near-horizontal (a photographed page is tilted a
few degrees), at least two of them parallel, make the page ruled; then the near-vertical lines of squared paper
and a lined page's margin count too. A digit's strokes never span the image, and a lone full-length stroke (a
"1" filling a canvas) has no parallel partner. Rulings are lifted to the paper by a closing across them, only
within a few pixels of them and never by more than the rulings' own darkness, so ink crossing them survives
(a thin stroke running exactly along a ruling is lost with it). In a photo taken at an angle the page's lines
converge, so not all of them lie along the rows and columns of one frame: those the frame's bands miss are then
found one by one, each along its own slant (`_drifting`), and erased the same way. On the threshold split's grid
renders this took the shipped model from 87.7 % to 95.0 %.

A lined page whose rulings are too faint to be found that way loses them to the noise threshold later, all but its
margin, printed darker: `erase_margins` takes that line out of the thresholded ink, when other ink lies beside it.

Uploads without rulings pay only the first test (a black-hat and two small binary filters on a quarter of the
columns, ~0.08 ms).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.preprocess.ink import bright_paper
from app.preprocess.morphology import as_uint8
from app.preprocess.quantiles import percentile

CONTRAST = 0.04
"""A thin dark feature is at least this much darker than the paper (fraction of the bright paper's brightness,
`ink.bright_paper`): the level of the first, cheap search for rulings and of the depth erasing may lift them by. Which
rows and columns are rulings is judged against the paper beside them instead (LINE_CONTRAST)."""
THIN = 5
"""Black-hat window (px of the working copy): rulings are at most ~3 px wide there."""
SQUEEZE = 4
"""Rulings are first looked for on every SQUEEZE-th column only: they cross them all, strokes shrink, and the
test costs a quarter (a ruling tilted 8° drifts half a pixel from one kept column to the next)."""
RUN = 4
"""A ruling leaves runs at least this long (kept columns; 16 px of the working copy) along its direction."""
SPAN = 0.9
"""Runs must cover this share of the image's width for rulings to be looked for."""
MAX_TILT = math.radians(8)
"""Rulings lie within this angle of horizontal (photographed pages: ±6°, scans: ±1.5°)."""
VOTES = 0.5
"""A candidate line gathers thin dark pixels along at least this share of the image's width."""
PEAKS = 64
"""Strongest candidate lines considered (OpenCV returns them by votes)."""
MIN_LINES = 2
"""Parallel horizontal lines needed before the page counts as ruled."""
ALONG = 0.6
"""In the page's frame, a row (column) that is thin dark line over at least this share of its length inside the
image is a ruling (squared paper's columns, a lined page's margin); the digit crossing it is the rest. Turned into
the page's frame, the image leaves empty corners, and a ruling near the top or bottom crosses only part of the
frame's width: judged over the whole width, the last line under a digit fell short and its remnants read as
strokes."""
VISIBLE = 0.3
"""Rows (columns) with less than this share of their length inside the image are not judged: in a corner, a short
stroke could cover ALONG of what is left. A safeguard: no threshold render of the grid style (three seeds, 1,800)
read differently with it at 0. At 0.5 (before), a ruling that a tilted page's corner shows for under half the
image's width stayed, as strong as the print, and a faint pencil "1" lost to it (read as 7); at 0.3 that render reads
right, no answer of the 9,981 threshold renders cached for tuning (the 809 held-out digits and seed 1, every style)
changed otherwise (58 grid results changed at all; 0.4 fixed the same render, changing 35, but left more such
rulings on synthetic lined pages)."""
LINE_CONTRAST = 0.025
"""There, a pixel is thin dark line when it is this much darker than the paper beside it (fraction of that paper's
own brightness, so a ruling in a shadow counts as fully as one in the light; CONTRAST, a fraction of the bright
paper, missed the shadowed stretch of a ruling, whose remnants then read as strokes). On the threshold split's
grid renders (600, shipped model): 0.02–0.03 read 96.2–96.3 %, CONTRAST's fixed level 94.8 %."""
BAND = 2
"""Pixels either side of a ruling's row (column) that erasing may change."""
CORE = 1
"""Pixels either side of a ruling's row (column) that are the ruling itself. Where a row's and a column's BAND
overlap, a square closing lifts only what lies on both (the crossing); what lies on one is lifted by the closing
across that ruling alone, so a stroke crossing it there survives as it does anywhere else along it, and what lies on
neither by the lesser of the two. A square closing over the whole overlap took every thin stroke within BAND of
a crossing, and faint pencil digits on squared paper fell apart there (threshold renders of the grid style, seeds
0, 1 and 2: 16, 11, 16 errors with it, 15, 11, 13 without)."""
DEPTH = 90
"""Erasing lifts a pixel by at most this percentile of how dark the rulings are: ink darker than the print
crossing them keeps the rest."""
LEAN = math.radians(3)
"""A ruling that the page's rows and columns miss may lean this far from them (`_drifting`): in a photo taken at an
angle, a page's parallel lines converge, so some cross several rows of the page's frame and fill none of them."""
CANDIDATE = 0.3
"""Such a line is a candidate with thin dark pixels along this share of the image's side (OpenCV's Hough votes)..."""
DRIFT_ALONG = 0.75
"""...and a ruling when they cover this share of its length inside the image, within a pixel across it: more than
ALONG asks of a row, since the pixel of slack lets a long, nearly straight stroke pass too (at 0.6, a 4's stem read as
a column ruling and was lost; 0.7 and 0.8 read the same three seeds' grid renders alike)."""
SUBPIXEL = 4
"""Fractional bits of the line ends given to `cv2.line` for those bands."""
SAME = 3
"""A candidate within this many pixels of a line already taken, at either end of the image, or crossing it, is that
line again (OpenCV returns several neighbouring peaks for one)."""
MARGIN_SPAN = 0.8
"""A margin line (`erase_margins`) has ink within a pixel of it in at least this share of the image's rows (columns;
the page's margin runs off the photo, but its faint stretches fall under the noise threshold)..."""
MARGIN_LEAN = math.radians(10)
"""...leaning at most this far from the image's columns (rows): a page photographed at an angle..."""
MARGIN_CANDIDATES = 4
"""...among the strongest few Hough lines near that direction..."""
MARGIN_THIN = 0.8
"""...is thin: at least this share of the ink within THIN px of it lies within BAND of it (a digit's stroke is wider,
or has the rest of the digit beside it)..."""
MARGIN_OTHER = 0.25
"""...and is erased only where ink of at least this many of the image's sides, in pixels, lies more than THIN px off
it: a straight stroke that is all the ink there is is the digit itself (a "1")."""


def erase_rulings(gray: np.ndarray, bright: float | None = None) -> np.ndarray:
    """`gray` (uint8 or float32, dark on light) with printed ruling lines replaced by the paper around them;
    `gray` itself when it has none. `bright`: `ink.bright_paper(gray)`, when the caller has it already.

    Near-horizontal rulings are looked for first (cheaply, on every SQUEEZE-th column); a page without them has
    none (squared paper has both families). With them, the page's tilt is known: in its frame, the rows and
    columns that are mostly thin dark line are the rulings. Back in the image's own frame (resampling it twice
    would smear the lines), a closing across each family lifts its lines to the paper, within BAND px of them;
    where both families cross, a square closing lifts the crossing itself (CORE). Rulings leaning up to LEAN from
    the frame, which its rows and columns miss, get bands of their own first (`_drifting`).
    """
    level = CONTRAST * (bright_paper(gray) if bright is None else bright)
    angle = _ruled_tilt(gray, level)
    if angle is None:
        return gray
    height, width = gray.shape
    pixels = as_uint8(gray)
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    # the corners the turn leaves empty are white: no line there, and each row's share is taken over what is not
    turned = cv2.warpAffine(pixels, rotation, (width, height), borderValue=255)
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float64) @ rotation.T
    inside = cv2.fillConvexPoly(np.zeros_like(pixels), np.round(corners - 0.5).astype(np.int32), 1)
    rows, columns = _lines(turned, inside, rows=True), _lines(turned, inside, rows=False)
    # bits: near a row ruling (BAND), near a column ruling, on a row ruling (CORE), on a column ruling
    row_marks = _near(rows, BAND) | _near(rows, CORE) << 2
    column_marks = _near(columns, BAND) << 1 | _near(columns, CORE) << 3
    marks = row_marks[:, None] | column_marks[None, :]
    back = cv2.invertAffineTransform(rotation)
    marks = np.asarray(  # uint8 already: no copy, but a type the checker can follow
        cv2.warpAffine(marks, back, (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE), np.uint8
    )
    # each black-hat once: both families' serve the search for rulings the bands missed and the lifting below; the
    # square one is made only if some pixel needs it
    hats = {kernel: _black_hat(pixels, kernel) for kernel in ((THIN, 1), (1, THIN))}
    for along_rows, kernel, near, on in ((True, (THIN, 1), 0b0001, 0b0100), (False, (1, THIN), 0b0010, 0b1000)):
        drifting = _drifting(pixels, hats[kernel], math.radians(angle), along_rows, marks & near)
        if drifting:
            marks |= _bands(marks.shape, drifting, BAND, near) | _bands(marks.shape, drifting, CORE, on)
    lift = np.zeros_like(pixels)
    # a pixel near one ruling, or near a crossing but on one ruling, is lifted by the closing across that ruling
    # (a stroke crossing it there survives); on both, by the square closing; near both but on neither, by the lesser
    for kinds, kernels in (
        ((0b0001, 0b0101, 0b0111), ((THIN, 1),)),  # near a row ruling only; on it, near a column ruling
        ((0b0010, 0b1010, 0b1011), ((1, THIN),)),  # near a column ruling only; on it, near a row ruling
        ((0b1111,), ((THIN, THIN),)),  # on both: where they cross
        ((0b0011,), ((THIN, 1), (1, THIN))),  # near both, on neither
    ):
        where = marks == kinds[0]
        for kind in kinds[1:]:
            where |= marks == kind
        if not where.any():
            continue
        for kernel in kernels:
            if kernel not in hats:
                hats[kernel] = _black_hat(pixels, kernel)
        hat = np.minimum.reduce([hats[kernel] for kernel in kernels])
        lines = hat[where]
        lines = lines[lines > level]
        if lines.size:  # no deeper than the rulings themselves: darker ink crossing them stays ink
            np.copyto(lift, np.minimum(hat, np.uint8(percentile(lines, DEPTH))), where=where)
    return gray + lift.astype(np.float32)


def erase_margins(ink: np.ndarray) -> np.ndarray:
    """`ink` (the strokes' strength, 0 where there are none: `strokes.threshold_noise`'s) without the margin line of a
    lined page, found on its own: a thin straight line along most of the image (MARGIN_SPAN, MARGIN_THIN) near a
    column or a row (MARGIN_LEAN), with other ink beside it (MARGIN_OTHER); `ink` itself when there is none.

    Why: a page whose rulings are too faint to be found as a family (`erase_rulings` leaves it as it is) loses them
    to the noise threshold, but its margin, printed darker (red, dark in the darkest channel), survives as a stroke
    as long as the page, and the digit written beside it took it in (4 of the 19 grid renders misread among the
    threshold split's 809 digits the shipped model never trained on: a 0, a 2 and a 7 read as 6, a 9 as 1). With it
    the 0, the 7 and the 9 read right, and one more of the split's seed-1 grid renders; no other render changed
    (15,381 threshold renders of every style: the 809 held-out digits and seeds 0-2, 300 a style). Ink across fewer
    than MARGIN_SPAN of the rows and of the columns, as most uploads', costs only that count.
    """
    height, width = ink.shape
    inked = (ink > 0).view(np.uint8)
    for columns in (True, False):  # a margin along the columns (the usual one), then one along the rows
        side = height if columns else width
        if np.count_nonzero(inked.any(axis=1 if columns else 0)) < MARGIN_SPAN * side:
            continue
        # only ink narrower than THIN across the line can be a printed line: a canvas digit's thick strokes, which
        # often run across that many rows too, are left out before the Hough transform (which cost ~0.8 ms on them)
        across = np.ones((1, THIN) if columns else (THIN, 1), np.uint8)
        thin = cv2.subtract(inked, cv2.morphologyEx(inked, cv2.MORPH_OPEN, across))
        if np.count_nonzero(thin.any(axis=1 if columns else 0)) < MARGIN_SPAN * side:
            continue
        normal = 0.0 if columns else math.pi / 2  # Hough's theta is the angle of the line's normal
        candidates = _hough(thin, normal, int(MARGIN_SPAN * side / 2), MARGIN_LEAN)[:MARGIN_CANDIDATES]
        if not candidates:
            continue
        *_, lined = _traced(thin, candidates, not columns)  # rows (columns) each meets thin ink in, as `_drifting`
        mask = inked.view(bool)
        for index in np.flatnonzero(lined >= MARGIN_SPAN * side):
            line = candidates[index]
            band = _bands(inked.shape, [line], BAND, 1).view(bool)
            near = np.count_nonzero(mask & _bands(inked.shape, [line], THIN, 1).view(bool))
            within = np.count_nonzero(mask & band)
            if within < MARGIN_THIN * near or np.count_nonzero(mask) - near < MARGIN_OTHER * side:
                continue  # a wide stroke, or the rest of a digit around it, or nothing else: the digit's own
            ink = np.where(band, np.float32(0.0), ink)
            inked = (ink > 0).view(np.uint8)
            break  # one margin a side: the other candidates are mostly the same line again
    return ink


def _ruled_tilt(gray: np.ndarray, level: float) -> float | None:
    """Degrees to rotate by (counter-clockwise) so near-horizontal rulings lie along rows; None unless at least
    MIN_LINES distinct parallel lines run across the image."""
    squeezed = np.ascontiguousarray(as_uint8(gray)[:, ::SQUEEZE])  # every SQUEEZE-th column: rulings cross all
    thin = cv2.threshold(_black_hat(squeezed, (THIN, 1)), level, 1, cv2.THRESH_BINARY)[1]
    runs = cv2.erode(cv2.dilate(thin, np.ones((3, 1), np.uint8)), np.ones((1, RUN), np.uint8))  # smear: tilt
    if np.count_nonzero(runs.any(axis=0)) < SPAN * runs.shape[1]:
        return None
    steep = math.atan(SQUEEZE * math.tan(MAX_TILT))  # tilts look SQUEEZE× steeper on the squeezed copy
    peaks = cv2.HoughLines(
        runs, 1, math.pi / 360, int(VOTES * runs.shape[1]), min_theta=math.pi / 2 - steep, max_theta=math.pi / 2 + steep
    )
    if peaks is None:
        return None
    rhos, thetas = peaks[:PEAKS, 0, 0], peaks[:PEAKS, 0, 1]
    tilt = float(np.sort(thetas)[len(thetas) // 2]) - math.pi / 2  # the median line's
    positions = np.sort(np.abs(rhos[np.abs(thetas - math.pi / 2 - tilt) < math.radians(4)]))
    if 1 + np.count_nonzero(np.diff(positions) > 2 * BAND) < MIN_LINES:
        return None
    return math.degrees(math.atan(math.tan(tilt) / SQUEEZE))


def _black_hat(pixels: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """How much darker each pixel of `pixels` (uint8) is than the closing around it over a `kernel` (rows, columns)
    window: thin dark features across that window's long side."""
    return cv2.morphologyEx(pixels, cv2.MORPH_BLACKHAT, np.ones(kernel, np.uint8))


def _thin(hat: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """uint8 0/1: where `pixels` (uint8) is thin dark line, its black-hat `hat` LINE_CONTRAST of the paper beside it."""
    # hat > LINE_CONTRAST × (pixel + hat), the paper beside it, as integers: hat × (1/LINE_CONTRAST − 1) > pixel
    return (hat.astype(np.uint16) * np.uint16(round(1 / LINE_CONTRAST) - 1) > pixels).view(np.uint8)


def _lines(turned: np.ndarray, inside: np.ndarray, rows: bool) -> np.ndarray:
    """uint8 0/1 per row (or column) of the page-aligned `turned`: 1 where it is thin dark line over at least
    ALONG of its length inside the image (`inside`, uint8 0/1: the pixels that came from the image, not from the
    corners the turn left empty)."""
    thin = _thin(_black_hat(turned, (THIN, 1) if rows else (1, THIN)), turned)
    axis = 1 if rows else 0
    # sums of 0/1 bytes: count_nonzero along an axis costs 4-5× as much here (~50 against ~13 µs)
    visible = inside.sum(axis=axis, dtype=np.int32)
    on = thin.sum(axis=axis, dtype=np.int32) >= ALONG * visible
    return (on & (visible >= VISIBLE * thin.shape[axis])).astype(np.uint8)


def _near(lines: np.ndarray, reach: int) -> np.ndarray:
    """uint8 0/1 per row (column): within `reach` rows (columns) of one where `lines` is 1."""
    return cv2.dilate(lines.reshape(-1, 1), np.ones((2 * reach + 1, 1), np.uint8)).ravel()


Line = tuple[float, float]
"""A straight line as OpenCV's Hough transform gives it: (rho, theta), the points x·cos θ + y·sin θ = rho."""


def _drifting(pixels: np.ndarray, hat: np.ndarray, tilt: float, rows: bool, band: np.ndarray) -> list[Line]:
    """The rulings of one family (rows: near-horizontal; else near-vertical) of `pixels` (uint8; `hat`: its black-hat
    across that family) that lean up to LEAN from the page's frame (turned by `tilt`, radians) and lie mostly (over
    half their length) outside `band` (nonzero where that family's rulings are already being erased): each thin dark
    line (`_thin`) over DRIFT_ALONG of its length inside the image, give or take a pixel across it, once (SAME)."""
    side = pixels.shape[1] if rows else pixels.shape[0]
    normal = tilt + math.pi / 2 if rows else tilt  # Hough's theta is the angle of the lines' normal
    thin = _thin(hat, pixels)
    candidates = _hough(thin & (band == 0), normal, int(CANDIDATE * side))  # votes only from what no band holds
    if not candidates:
        return []
    # every candidate at once: where each crosses each row (column) of the image, which of those are inside it,
    # and how many of them are thin dark line (with a pixel of slack) or already in `band`
    across, points, inside, lined = _traced(thin, candidates, rows)
    visible = np.count_nonzero(inside, axis=1)
    banded = np.count_nonzero(band[points].astype(bool) & inside, axis=1)
    found: list[Line] = []
    taken: list[tuple[int, int]] = []  # where each line found meets the image's two sides
    for index in np.flatnonzero((visible >= VISIBLE * side) & (lined >= DRIFT_ALONG * visible)):
        ends = int(across[index, 0]), int(across[index, -1])
        # a neighbouring peak of a line already taken (near it at an end of the image, or crossing it) is that line
        if any(min(abs(ends[0] - a), abs(ends[1] - b)) <= SAME or (ends[0] - a) * (ends[1] - b) <= 0 for a, b in taken):
            continue
        taken.append(ends)  # taken even when the bands hold it already, so that its neighbouring peaks are skipped
        if 2 * banded[index] < visible[index]:
            found.append(candidates[index])
    return found


def _crossings(
    lines: list[Line], rows: bool, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Where each of `lines` (rows: near-horizontal, so met once by every column; else near-vertical, met by every
    row) crosses each column (row) of an image of `shape`: K×side positions across, the pixels there (clipped to the
    image, ready to index it with) and whether each lies inside the image."""
    height, width = shape
    side, across_side = (width, height) if rows else (height, width)
    rhos, thetas = np.array(lines, np.float64).T
    normal_along, normal_across = (np.cos(thetas), np.sin(thetas)) if rows else (np.sin(thetas), np.cos(thetas))
    along = np.arange(side)
    across = np.round((rhos[:, None] - along * normal_along[:, None]) / normal_across[:, None]).astype(np.intp)
    clipped = np.clip(across, 0, across_side - 1)
    points = (clipped, along) if rows else (along, clipped)
    return across, points, (across >= 0) & (across < across_side)


def _traced(
    thin: np.ndarray, lines: list[Line], rows: bool
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """`_crossings` of `lines` over the 0/1 image `thin`, and how many of each line's crossings inside the image are
    thin dark line give or take a pixel across it (a ruling drawn straight wavers by that much)."""
    slack = cv2.dilate(thin, np.ones((3, 1) if rows else (1, 3), np.uint8))
    across, points, inside = _crossings(lines, rows, thin.shape)
    return across, points, inside, np.count_nonzero(slack[points].view(bool) & inside, axis=1)


def _hough(thin: np.ndarray, normal: float, votes: int, lean: float = LEAN) -> list[Line]:
    """OpenCV's Hough lines of the 0/1 image `thin` with at least `votes` pixels, whose normal lies within `lean` of
    `normal` (radians, any value: the range is folded into OpenCV's [0, π)): the PEAKS most voted, most voted first
    (texture, a page of noise, can offer thousands)."""
    found = []
    for shift in (0.0, math.pi, -math.pi):
        low, high = max(normal - lean + shift, 0.0), min(normal + lean + shift, math.pi)
        if high > low:
            lines = cv2.HoughLinesWithAccumulator(thin, 1, math.pi / 360, votes, min_theta=low, max_theta=high)
            if lines is not None:
                found.append(lines.reshape(-1, 3))
    if not found:
        return []
    lines = np.concatenate(found)
    strongest = lines[np.argsort(-lines[:, 2], kind="stable")[:PEAKS]]
    return [(float(rho), float(theta)) for rho, theta, _ in strongest]


def _bands(shape: tuple[int, int], lines: list[Line], reach: int, bit: int) -> np.ndarray:
    """uint8: `bit` within `reach` pixels of each of `lines` (drawn across the whole image), 0 elsewhere."""
    height, width = shape
    scale = 1 << SUBPIXEL
    bands = np.zeros(shape, np.uint8)
    for rho, theta in lines:
        cos, sin = math.cos(theta), math.sin(theta)
        ends: list[tuple[float, float]]
        if abs(sin) >= abs(cos):  # nearer horizontal: where it meets the left and right sides
            ends = [(x, (rho - x * cos) / sin) for x in (0.0, width - 1.0)]
        else:  # nearer vertical: the top and bottom
            ends = [((rho - y * sin) / cos, y) for y in (0.0, height - 1.0)]
        start, end = (tuple(round(value * scale) for value in point) for point in ends)
        cv2.line(bands, start, end, bit, thickness=2 * reach + 1, shift=SUBPIXEL)
    return bands
