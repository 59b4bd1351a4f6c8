"""Uneven light and shadows divided out: ink strength in [0, 1] (`divide_background`), 1 where a pixel is as dark as
ink can be relative to the paper under it, so that a stroke in a shadow and one in full light look the same to the
stroke steps (`strokes`).

The paper's brightness under the strokes is estimated on small copies of the image (a closing, and a grey-level fill
of every basin not connected to the border, `fill_basins`), with a plane through the paper for light falling off
across a page (`paper_plane`) and a full-resolution closing where shadows have hard edges (`paper_window`).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from app.preprocess.ink import DESK_DARK, FAINTEST_STROKES
from app.preprocess.morphology import (
    area_and_outline,
    grow,
    least_side_maximum,
    max_filter,
    min_filter,
    reconstruct_side_by_side,
    ridge_width,
)
from app.preprocess.quantiles import percentile, percentiles

BACKGROUND_SIDE = 64
"""Longer side of the even smaller copy on which the paper's brightness is estimated."""
BACKGROUND_WINDOW = 0.3
"""Closing window, as a fraction of that copy's longer side: wider than a marker stroke, so strokes vanish."""
PAPER_WINDOW = 0.16
"""Shaded paper's brightness is taken at full resolution, by a closing this fraction of the longer side wide...
(the small copy's estimate, scaled back up, blurs a hard shadow's edge over several pixels: the rim of its dark side
read as ink, and faint strokes on its light side faded; a closing keeps a straight edge where it is). Measured on
the threshold split without the minima copy: 0.12 and 0.14 read within 1–2 renders of 0.16 on tilted, pencil, grid
and photo (600 each); 0.3 read 9 fewer pencil renders right (both without STROKE_SPAN)."""
STROKE_SPAN = 4.0
"""...or this many stroke widths, if that is wider, so that wide marker strokes, and where they meet, are still
filled (without it marker read 95.83 % instead of 98.83 % on the threshold split); where that reaches the small
copy's own window (BACKGROUND_WINDOW), the small copy's estimate stays, with the fill that restores paper under
strokes wider still."""
FLAT_PAPER = 0.08
"""Paper this much darker than the typical bright paper is shaded (ink, at least twice as dark, is not)..."""
SHADE_OF_INK = 0.25
"""...or more than this share of the ink's own darkness, where the ink is faint: on even paper the ink is measured
against one brightness, so paper shaded by a quarter of a faint pencil line's darkness reads as ink as strong as
the line's faint stretches that `strokes.threshold_noise` keeps (WEAK_INK of its level), and a broad gradient kept
that way beat the digit (a pencil 9 read as a grey wedge, and so as a 1). On the held-out threshold renders (809 a
style) pencil 17 → 15 errors and no other answer changed (25 pencil, 8 grid and 1 pen result changed at all; 0.2
changed 72 pencil results for the same two)..."""
FLAT_SHADED = 0.05
"""...and an image with less than this share of shaded paper has no shadows to mistake for ink..."""
CORNER = 1 / 12
"""...unless a corner (a square this fraction of the shorter side) is mostly as dark as a desk (DESK_DARK): the
desk past a photographed page's corner (on the threshold renders: 81 % of tilted phone shots, 0–4 % of canvas,
sheet, marker, pen, pencil, grid and chalk images; a stroke running off an edge rarely fills a corner)."""
MINIMA_SPAN = 0.5
"""The second small copy averages the darkest pixel of each window this share of a small-copy pixel wide (a thin
stroke keeps most of its darkness there). A whole pixel's minimum joined the grain of blurred, noisy phone shots into
paths to the border (threshold split: tilted 94.33 against 95.83 %, pencil 97.33 against 96.67 %)."""
ENCLOSED_GAIN = 2.0
"""A pixel counts as enclosed ink when filling raises it by half its darkness below the paper..."""
ENCLOSED_ABS = 25.0
"""...or by this many gray levels (of 255), however dark its paper (a dark stroke crossing a darker shadow), counting
from ENCLOSED_SHALLOW..."""
ENCLOSED_SHALLOW = 8.0
"""...since a rise of fewer levels is the grain of a dark desk or a shadow, filled in its small dips: counted from 0,
such dips next to a photographed page's edge, where the paper's brightness reaches past the page, came out as strong
ink, set the stroke level, and faint strokes fell under it (threshold split, 600 a style: tilted 25 → 19 errors,
pencil 20 → 21, photo 10 → 11, grid, pen, marker, sheet, canvas and chalk unchanged; counting from 5: 21, 21, 11;
from 12: 18, 22, 11; not counting absolute rises at all: 18, 22, 11, marker and chalk one more each)..."""
ENCLOSED_DEPTH = 3.0
"""...but darkness under this many gray levels is paper noise, never ink."""
THIN_WINDOW = 3
"""A fifth copy, the averaged one levelled by its own wide closing, is judged for enclosure too (`flat`): there
a shadow as broad as the closing is paper, and a faint stroke running out of it into the light (paler than the
shadow, so on the other copies a path no lighter than itself to the border) is a basin like any stroke. But the
closing also fills a shadow's narrow parts, which there look as dark as strokes; so that copy vouches only for
darkness that is a feature at most this many of its pixels wide (what a closing this wide lifts), where it is..."""
THIN_SHARE = 0.85
"""...at least this share of the pixel's darkness there. Threshold split's held-out digits (809 a style) and seed 1
(300 a style), every output compared: 106 → 98 and 31 → 29 errors (held out: pencil 15 → 13, grid 15 → 14, photo
10 → 9, tilted 23 → 19), none broken. Held out, share 0.5: 98 errors, 3 broken; 0.7: 98, 1 broken; window 5 with
0.7: 99, 4 broken; the copy unrestricted: 104, 8 broken (shadows' wedges read as ink). The tip of a shadow's wedge
where it is narrower than the window still reads as faint ink (`test_ink`); `strokes.keep_digit` drops it when it
lies apart from the digit."""
PLANE_SHADE = 0.9
"""The paper's plane (`paper_plane`) is fitted to the pixels at least this share of it: twice refitted without those
darker (ink, shadows, the desk), so that only the light falling off across the page sets it."""
PATCH_SPAN = 4.5
"""Ink of thin strokes loses what is wider than this many stroke widths (`lift_patches`: a grey opening this wide,
subtracted)..."""
THIN_STROKE_PX = 3.0
"""...when its strokes are at most this wide, in pixels of the working copy (pen and pencil lines, 1–2 px there);
wider strokes (markers, chalk) keep their ink: the opening would take their cores and junctions (applied to every
image, tilted read 149 of 600 threshold renders wrong). On the threshold split (600 a style): pencil 20 → 14 errors,
grid 20 → 16, pen 15 → 14, tilted 17 → 18; photo, canvas, sheet, marker and chalk unchanged. While choosing (before
SPECK_PIXELS): span 3.5 read pencil 16 and grid 18; bounds of 2.5 and 4.2 px within one render of 3."""
RIDGE_INK = 0.3
"""Strokes' width is measured on the ink above this share of the strongest (its 99.9th percentile)..."""
SPECK_PIXELS = 5
"""...counting only its ridge pixels with at least this many strong pixels in the 5×5 window around them
(`morphology.ridge_width`'s crowd): without it, specks of paper grain, each a ridge of width 2, outnumbered a
photographed marker digit's ridge and passed it off as a pen line (one photo render more read wrong); 7 read one
pencil render fewer right."""
EDGE_INK = 0.3
"""A border pixel this much darker than the paper there may be a stroke running off the edge..."""
EDGE_RUN = 0.15
"""...if the dark run along the border is at most this fraction of the side; longer runs are shadows."""


def divide_background(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1]: 1 − pixel / brightness of the paper under it, where something dark is enclosed.

    Even paper (a canvas, a scan) has one brightness, a single number. Shaded paper's is a closing (max then
    min filter) at full resolution, wider than the strokes (PAPER_WINDOW, STROKE_SPAN), which keeps gradients,
    vignetting, broad shadows and a shadow's hard edge; strokes wider still get the estimate of a small copy (the
    brighter of a wide closing and `fill_basins`, which restores paper under strokes too thick for any closing).
    Dividing by it leaves ink equally dark in a shadow and in full light. A closing also fills narrow corners of
    shadows, but those, unlike strokes, connect to the border through pixels no lighter than themselves, so filling
    does not raise them: ink strength is kept in proportion to how much of a pixel's darkness filling explains
    (ENCLOSED_*), judged on two small copies, one averaged and one of minima (`enclosure`), and on the same two
    levelled by the paper's plane (`paper_plane`), where a faint stroke drawn down the light's gradient is no path
    to the darker border, and on the averaged copy levelled by its own closing, where a faint stroke leaving a hard
    shadow for the light is no path to the shadow either (for thin darkness only: THIN_WINDOW). `gray`: uint8 or
    float32; the result is float32.
    """
    height, width = gray.shape
    sample = gray[::2, ::2]  # finer than the small copy, whose blur would make the rims of strokes look shaded
    darkest, bright = percentiles(sample, (0.1, 90))  # the darkest thousandth: the ink's own darkness
    rims = grow(sample <= 0.5 * bright, 3)  # the soft edges of ink are not shade
    ink_depth = 1.0 - darkest / max(bright, 1.0)
    shade = min(FLAT_PAPER, SHADE_OF_INK * ink_depth)
    shaded = np.count_nonzero((sample < (1 - shade) * bright) & ~rims) / sample.size
    if shaded < FLAT_SHADED and not dark_corner(sample, DESK_DARK * bright):  # even paper: no shadow or desk
        return np.clip(1.0 - gray * np.float32(1 / max(bright, 1.0)), 0.0, 1.0)
    source = gray  # uint8 from an 8-bit upload: OpenCV's filters are ~3× faster on it than on float32
    gray = gray.astype(np.float32, copy=False)
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    copies = [gray]  # small already: no second copy of minima, which would be the same image
    if factor > 1:  # averaged, and of minima
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        copies = [
            cv2.resize(gray, size, interpolation=cv2.INTER_AREA),
            cv2.resize(min_filter(gray, math.ceil(MINIMA_SPAN * factor)), size, interpolation=cv2.INTER_AREA),
        ]
    averaged = copies[0]
    window = 2 * int(BACKGROUND_WINDOW * max(averaged.shape) / 2) + 1
    closings = [min_filter(max_filter(values, window), window) for values in copies]
    # the same copies with the light's fall-off across the page divided out, and the averaged one with its closing
    # divided out (broad shadows too), their paper a flat 255
    plane = paper_plane(averaged, closings[0])
    flat = levelled(averaged, closings[0])
    stack = np.stack(copies + [levelled(values, plane) for values in copies] + [flat])
    rims = np.stack(closings + [np.full_like(averaged, 255.0)] * (len(copies) + 1))
    papers, enclosed = enclosure(stack, rims, fill_basins(stack, rims))  # all copies at once
    enclosed[-1] *= thin_darkness(flat)  # the flattened copy vouches for strokes only, not a shadow's narrow parts
    paper = papers[0]  # the averaged copy's (among minima the paper reads darker, by its grain)
    # enclosed where any copy says so (among minima a thin stroke touching a shadow is still darker than it; on a
    # levelled copy a faint stroke running down the light's gradient is no canal to the darker border), and on
    # antialiased stroke rims too
    enclosed = max_filter(enclosed.max(axis=0), 3)
    sharp = paper_window(averaged, paper, factor, max(height, width))
    if factor > 1:
        enclosed = cv2.resize(enclosed, (width, height), interpolation=cv2.INTER_LINEAR)
        if sharp is None:
            paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    if sharp is not None:
        paper = min_filter(max_filter(source, sharp), sharp).astype(np.float32, copy=False)
    paper = np.maximum(np.maximum(paper, gray), 1.0)  # ink is never brighter than its paper (the upsampled
    return lift_patches((1.0 - gray / paper) * enclosed)  # estimate may dip), so this is in [0, 1] unclipped


def levelled(values: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """`values` (float32) divided by the brightness of their paper `paper`, scaled so that paper reads 255 (what is
    brighter than its paper is clipped there)."""
    return np.minimum(values * (np.float32(255.0) / np.maximum(paper, np.float32(1.0))), np.float32(255.0))


def thin_darkness(flat: np.ndarray) -> np.ndarray:
    """Where the darkness of `flat` (a small copy whose paper is 255) is, for at least THIN_SHARE of it, a feature
    no wider than THIN_WINDOW (what a closing that wide lifts): strokes, not the broad parts of a shadow. Boolean."""
    lifted = min_filter(max_filter(flat, THIN_WINDOW), THIN_WINDOW) - flat
    return (lifted >= THIN_SHARE * (np.float32(255.0) - flat)) & (flat < np.float32(255.0))


def lift_patches(ink: np.ndarray) -> np.ndarray:
    """Ink of thin strokes less its solid patches: `ink` minus its grey opening (min then max filter) PATCH_SPAN
    stroke widths wide, a white top-hat; `ink` itself if its strokes are wider than THIN_STROKE_PX.

    A pencil or pen digit's ink is faint, and the tip of a shadow that the background division filled where it
    met the strokes (enclosed there, so not divided out) is a patch of ink as strong, many strokes wide: it set the
    stroke level, the strokes fell under it, and the digit read as a blob. The opening holds only what is wider
    than the strokes, so subtracting it takes the patch and leaves the strokes, also where they cross it (what
    they add to its darkness). Stroke width is `morphology.ridge_width` of the strong ink (RIDGE_INK), which a
    patch barely moves.
    """
    strong = ink > RIDGE_INK * percentile(ink[::2, ::2], 99.9)  # every 4th pixel: plenty for a percentile
    width = ridge_width(strong, SPECK_PIXELS)
    if not 0.0 < width <= THIN_STROKE_PX:
        return ink
    window = 2 * int(PATCH_SPAN * width / 2) + 1
    lifted = ink - max_filter(min_filter(ink, window), window)
    # nothing left as strong as a stroke (the ink was one faint patch, or strokes in one): what was there stays
    return lifted if percentile(lifted[::2, ::2], 99.9) >= FAINTEST_STROKES else ink


def enclosure(values: np.ndarray, closed: np.ndarray, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """On a small copy `values` (or a stack of them): the paper's brightness (the brighter of its closing `closed`
    and its basins `filled`, see `fill_basins`) and how enclosed each pixel's darkness is, in [0, 1] (ENCLOSED_*).

    Judged on the averaged copy alone, a thin pen line touching a shadow that reaches the border was paler there
    than the shadow, so "connected to the border through pixels no lighter than itself" and erased where it ran
    in the light; among minima it keeps its darkness. Each copy misses what the other sees: among minima, grain
    and JPEG noise join into dark paths that connect faint strokes to the border, so a pixel counts as enclosed
    when either copy says so.
    """
    paper = np.maximum(closed, filled)  # filling also restores paper under strokes too wide for closing
    raised = filled - values
    # ×ENCLOSED_GAIN: a stroke running from light into shadow, only partly a basin where lit, counts fully
    absolute = (raised - ENCLOSED_SHALLOW) / (ENCLOSED_ABS - ENCLOSED_SHALLOW)
    enclosed = np.maximum(ENCLOSED_GAIN * raised / np.maximum(paper - values, ENCLOSED_DEPTH), absolute)
    return paper, np.clip(enclosed, 0.0, 1.0)


def paper_plane(values: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """A plane through the paper's brightness `paper` (a closing of the small copy `values`), fitted by least
    squares to the pixels of `values` at least PLANE_SHADE of it (refitted twice), as a float32 image; a constant
    (the paper's mean) where the pixels left do not span a plane (too few, or all in one row or column).

    Why a plane: the light falls off across a photographed page (a lamp to one side, the phone's shadow, the lens's
    vignetting), and a faint stroke drawn from the bright side toward the dim one is a path, no lighter than itself,
    to the darker border: filling does not raise it, so `enclosure` took it for shade. Divided by this plane the page
    is even; a shadow's hard edge, the desk and the strokes, which a plane cannot follow, stay dark.
    """
    terms = _plane_terms(*values.shape)  # per pixel: 1, x, y, x², xy, y²
    target, brightness = paper.ravel().astype(np.float64), values.ravel()
    fitted = np.full(values.size, max(float(paper.mean()), 1.0), np.float32)
    used = brightness > 0.5 * percentile(values, 90)  # paper: first what is not dark...
    for _ in range(3):
        weights = used.astype(np.float64)
        # the normal equations from sums over the chosen pixels: ~10× faster than least squares on the pixels
        count, x, y, xx, xy, yy = terms @ weights
        if count < 24 or min(xx * count - x * x, yy * count - y * y) < 1e-4 * count * count:
            break  # fewer than 24 pixels, or no spread across rows or columns: no plane to fit
        normal = np.array([[count, x, y], [x, xx, xy], [y, xy, yy]])
        fitted = (terms[:3].T @ np.linalg.solve(normal, terms[:3] @ (weights * target))).astype(np.float32)
        used = brightness >= PLANE_SHADE * fitted  # ...then what lies near the plane so far
    return fitted.reshape(values.shape)


@functools.lru_cache(maxsize=16)
def _plane_terms(height: int, width: int) -> np.ndarray:
    """6×N for a height×width image: 1, x, y, x², xy, y² of each pixel (x and y in [0, 1)), whose sums over chosen
    pixels make `paper_plane`'s normal equations. Cached: the small copies' few sizes recur."""
    rows, cols = np.mgrid[0:height, 0:width]
    x, y = cols.ravel() / width, rows.ravel() / height
    terms = np.stack([np.ones(height * width), x, y, x * x, x * y, y * y])
    terms.flags.writeable = False  # shared by every call (and thread) with this size
    return terms


def paper_window(values: np.ndarray, paper: np.ndarray, scale: float, side: int) -> int | None:
    """Width of the full-resolution closing that takes the paper's brightness (PAPER_WINDOW, STROKE_SPAN), or
    None where the small copy's estimate stays. `values` and `paper` are the averaged small copy and its paper,
    `scale` how many full-resolution pixels one of its pixels spans, `side` the full image's longer side.

    The strokes' width is measured on the small copy (2 × area / outline of the ink over half the strongest's,
    scaled up): only wide strokes change the window, and the small copy still shows their width.
    """
    ink = 1.0 - values / np.maximum(paper, 1.0)
    area, outline = area_and_outline(ink > 0.5 * percentile(ink, 99.5))
    stroke = 2.0 * area / max(outline, 1) * scale
    window = 2 * int(max(PAPER_WINDOW * side, STROKE_SPAN * stroke) / 2) + 1
    return window if window < BACKGROUND_WINDOW * side else None


def dark_corner(gray: np.ndarray, dark: float) -> bool:
    """Whether a corner of `gray` (a square CORNER of its shorter side) is mostly (> half) darker than `dark`."""
    side = max(2, round(CORNER * min(gray.shape)))
    corners = (gray[:side, :side], gray[:side, -side:], gray[-side:, :side], gray[-side:, -side:])
    return any(2 * np.count_nonzero(corner <= dark) > corner.size for corner in corners)


def fill_basins(copies: np.ndarray, rims: np.ndarray) -> np.ndarray:
    """Grey-level fill of every dark region not connected to the border (reconstruction by erosion), of each
    image of `copies` (K×H×W, float32), in one reconstruction (`reconstruct_side_by_side`); K×H×W.

    Each stroke becomes as bright as the paper around it; anything dark that reaches the border (a shadow)
    stays. A short dark run along the border (a stroke running off the edge) is seeded with its `rims` image, the
    paper estimate, so it is still filled; a long one (a shadow) is seeded with itself and stays.
    """
    seeded = copies.copy()
    sides = (np.s_[:, 0, :], np.s_[:, -1, :], np.s_[:, :, 0], np.s_[:, :, -1])
    # the dark pixels of every image's four sides at once: usually there are none, and each side looked at on its
    # own costs ~7 µs, so only the sides with some get their runs measured (`_seed_edge`)
    dark = [copies[side] < (1.0 - EDGE_INK) * rims[side] for side in sides]
    inked = np.stack([marks.any(axis=1) for marks in dark], axis=1)
    for image, side in zip(*np.nonzero(inked), strict=True):
        edge = (image, *sides[side][1:])
        seeded[edge] = _seed_edge(copies[edge], rims[edge], dark[side][image])
    # Start from the best straight path to each side (the brightest pixel met on the way is as high as the fill can
    # need there): the same result as starting from "everything full", in a few passes, not dozens.
    markers = least_side_maximum(seeded)
    return np.stack(reconstruct_side_by_side(list(markers), list(copies)))


def _seed_edge(edge: np.ndarray, rim: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """One border line of the fill marker: its own values, but short runs of ink (strokes) get the rim. `dark`: where
    the line is EDGE_INK darker than its rim (`fill_basins` finds them for all sides at once).

    A run reaching a corner is never a stroke: a stroke runs off one edge, while darkness in a corner is the desk
    past a photographed page's corner, or a shadow.
    """
    inky = np.concatenate(([False], dark, [False]))
    changes = np.flatnonzero(inky[1:] != inky[:-1]).reshape(-1, 2)  # [start, end) of each dark run
    seed = edge.copy()
    for start, end in changes:
        if end - start <= EDGE_RUN * edge.size and start > 0 and end < edge.size:
            seed[start:end] = rim[start:end]
    return seed
