"""From ink strength to the digit's strokes: noise thresholded to 0, only the digit kept, marker strokes thinned."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.preprocess.digit import BOX
from app.preprocess.errors import ImageError
from app.preprocess.ink import DESK_DARK, FAINTEST_STROKES, bright_paper
from app.preprocess.morphology import area_and_outline, grow, max_filter, min_filter
from app.preprocess.quantiles import median

if TYPE_CHECKING:  # cues measures with stroke_width from here
    from app.preprocess.cues import CueNotes

GRID_CELLS = 32
"""Cells along the longer side of the grid on which strokes are grouped into parts."""
WEAK_INK = 0.25
"""Share of the stroke level above which ink joined to strong ink (`threshold_noise`: 40 % of the level) is still a
stroke. The faint stretch of a pencil stroke or of a blurred tilted shot's fell under 40 % and was cut off, and the
rest read as another digit (threshold split, seeds 0, 1 and 2, 9,600 renders: 169 errors → 163 at 0.25 and at 0.2,
166 at 0.3; at 0.25 tilted 46 → 42, pencil 26 → 23, grid 36 → 37, every other style's count the same)."""
SOLID = 3.0
"""A part whose ink is this many times wider than the longest-stroked part's is a shadow or a smudge, not a stroke."""
SOLID_INK = 0.2
"""Ink strength (after `threshold_noise`) counted when measuring a part's width."""
DESK_EDGE = 0.25
"""A part is the edge of the desk, not a stroke, when more than this share of the pixels around its ink (two pixels
out) are as dark as a desk (`ink.DESK_DARK`): a stroke lies on paper all round, while the sliver that the background
division leaves along a photographed page's edge lies against the desk. Judged against the part's own darkness (the
rule before), a faint stroke on shaded paper passed for an edge, and a wedge of desk in a page's corner, whose ring is
partly lighter desk, did not (threshold split, 600 a style: tilted 19 → 17 errors, pencil 21 → 20, grid 19 → 20,
photo, pen, marker, sheet, canvas and chalk unchanged)."""
THICK_STROKE = 2.9
"""Stroke width (px at the 20-px scale) above which strokes are thinned; 90 % of MNIST digits are thinner."""
THIN_STROKE = 2.3
"""Stroke width that thinning aims for (MNIST's median is 2.0)."""
FINE_STROKE = 1.0
"""Stroke width below which strokes are thickened. On the threshold split's renders, pen and pencil strokes
measure 0.18–0.59 (1st–99th percentile), the first styles' (photo, canvas, sheet, marker) 1.26 or more."""
THICKEN_TO = 3.6
"""Stroke width that thickening aims for, as measured before resampling: the 28×28 result then measures 1.8,
MNIST's median on the same 28×28 measure. On the threshold split's renders (300 each, shipped model), any
target from 2.1 to 4.0 read pen 97.0–97.3 % (86.0 % unwidened), pencil 90.7–92.3 % (74.3 %), tilted
93.0–94.3 % (86.7 %), grid 94.3–96.0 %."""


def threshold_noise(ink: np.ndarray) -> np.ndarray:
    """Stretch ink strength so strokes are ~1 and paper texture, JPEG noise and faint shadows are exactly 0.

    The stroke level is the strength of the strongest ink (the value a thousandth of the pixels exceed, so a
    few specks cannot set it). Ink at 40 % of that level is strong; pixels within one pixel of it, and weaker ink
    (WEAK_INK of the level) joined to it, keep their strength above the paper's own noise floor (median + 5 robust
    standard deviations of the pixels well below the stroke level, so a digit covering much of the image does not
    count as noise): antialiased edges survive as in MNIST, and so does the faint stretch of a stroke drawn with
    less pressure or in a blurred shot; everything else is background. An image without strong ink has no digit.
    """
    rank = max(10, ink.size // 1000)
    candidates = ink[ink > 0.02]  # partitioning only these is fast; the many equal zeros make it slow
    level = float(np.partition(candidates, -rank)[-rank]) if candidates.size >= rank else 0.0
    step = max(1, int(math.sqrt(ink.size / 8192)))
    sample = ink[::step, ::step]
    paper = sample[sample < 0.25 * level]
    typical = median(paper) if paper.size else 1.0
    spread = 1.4826 * median(np.abs(paper - typical)) if paper.size else 0.0
    floor = typical + 5.0 * spread + 0.03
    strong = ink > max(floor, 0.4 * level)
    if level < max(FAINTEST_STROKES, floor) or np.count_nonzero(strong) < rank:
        raise ImageError(
            "no digit found: the image looks blank; draw or photograph a single dark digit on a "
            "light background (or a light one on dark)"
        )
    soft = ink - np.float32(floor)  # in place from here: each new array costs as much as the arithmetic
    soft *= np.float32(1 / max(0.9 * level - floor, 1e-3))
    np.clip(soft, 0.0, 1.0, out=soft)
    kept = grow(strong)
    # hysteresis, as Canny's edges: weak ink is kept where it joins strong ink (8-connected), specks on their own go
    weak = (ink > max(floor, WEAK_INK * level)).view(np.uint8) | strong.view(np.uint8)
    beyond = np.flatnonzero(weak.view(bool) & ~kept)  # weak ink not kept already: all that the parts can add
    if beyond.size:
        count, parts = cv2.connectedComponents(weak, connectivity=8)
        joined = np.zeros(count, bool)
        joined[parts[strong]] = True  # (the background's label, 0, is never strong)
        kept.ravel()[beyond[joined[parts.ravel()[beyond]]]] = True
    soft *= kept
    return soft


def keep_digit(ink: np.ndarray, notes: CueNotes | None = None, gray: np.ndarray | None = None) -> np.ndarray:
    """Zero everything but the digit: the group of nearby strokes with the most strong ink, plus small parts
    close to it.

    Strokes are grouped on a coarse grid (cells of 1/32 of the image, grown by one cell so a pen lifted
    briefly still joins). Mass is counted as ink⁴, so a solid patch of moderately dark shadow or a smudge
    loses to real strokes (ink² lost 2 more pencil, 1 more grid and 1 more tilted render of 300 on the
    threshold split). Groups within a third of the digit-so-far's size are added, repeatedly (a
    detached bar of a 5, a dotted stroke); specks and shadows elsewhere are dropped, and so are solid patches
    beside the strokes, however near (`_drop_solid`: on the threshold split, 2 more pencil renders and 1 more tilted
    render of 300 read right, no other style changed), and, given the `gray` image the ink came from, slivers along
    the desk's edge (`_desk_edges`: on the threshold split, 2 more tilted renders of 300 read right, no
    other style changed). `notes`, when given, records the ink's separate parts and what was dropped
    (`CueNotes.record_parts`).
    """
    height, width = ink.shape
    cell = max(2, math.ceil(max(height, width) / GRID_CELLS))
    rows, cols = -(-height // cell), -(-width // cell)
    padded = ink
    if (rows * cell, cols * cell) != ink.shape:
        padded = np.zeros((rows * cell, cols * cell), np.float32)
        padded[:height, :width] = ink
    # Per cell: its mean (an exact-factor INTER_AREA resize) × its area is its sum. A cell is occupied by at least
    # half a cell-width of solid stroke.
    area = cell * cell
    occupied = cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA) * area > 0.5 * cell
    strength = cv2.resize(np.square(padded * padded), (cols, rows), interpolation=cv2.INTER_AREA) * area
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grow(occupied).view(np.uint8), connectivity=8)
    masses = np.bincount(labels.ravel(), weights=strength.ravel(), minlength=count)[1:]
    if masses.size == 0 or masses.max() <= 0.0:
        raise ImageError("no digit found: draw or photograph a single digit")
    best = int(np.argmax(masses)) + 1
    boxes = {  # (top, bottom, left, right) in cells, inclusive
        label: (
            int(stats[label, cv2.CC_STAT_TOP]),
            int(stats[label, cv2.CC_STAT_TOP] + stats[label, cv2.CC_STAT_HEIGHT] - 1),
            int(stats[label, cv2.CC_STAT_LEFT]),
            int(stats[label, cv2.CC_STAT_LEFT] + stats[label, cv2.CC_STAT_WIDTH] - 1),
        )
        for label in range(1, count)
        if label == best or masses[label - 1] >= 0.05 * masses[best - 1]
    }
    if gray is not None and len(boxes) > 1:
        edges = _desk_edges(ink, gray, labels, cell, boxes)
        if len(edges) < len(boxes):  # all of them "edges": nothing to prefer, keep the usual choice
            for label in edges:
                del boxes[label]
            best = max(boxes, key=lambda label: masses[label - 1])
    if len(boxes) > 1:
        best = _drop_solid(ink, labels, cell, boxes, best)
    keep, (top, bottom, left, right) = {best}, boxes[best]
    grew = True
    while grew:  # absorb parts near the digit so far, so a dotted or broken stroke is followed to its end
        grew = False
        reach = max(1.0, (max(bottom - top, right - left) + 1) / 3)
        for label, (t, b, lft, rgt) in boxes.items():
            if label not in keep and max(top - b, t - bottom, left - rgt, lft - right, 0) <= reach:
                keep.add(label)
                top, bottom, left, right = min(top, t), max(bottom, b), min(left, lft), max(right, rgt)
                grew = True
    kept = np.zeros(count, np.uint8)
    kept[list(keep)] = 1
    cells = kept[labels]
    mask = cv2.resize(cells, (cols * cell, rows * cell), interpolation=cv2.INTER_NEAREST)[:height, :width]
    kept = ink * mask
    if notes is not None:
        notes.record_parts(ink, kept)
    return kept


def _desk_edges(
    ink: np.ndarray, gray: np.ndarray, labels: np.ndarray, cell: int, boxes: dict[int, tuple[int, int, int, int]]
) -> set[int]:
    """The parts of `boxes` that lie against the desk (DESK_EDGE), not on paper.

    A faint digit on a page photographed on a dark desk can lose to a strong sliver just outside the page: the
    paper's brightness, estimated wider than the strokes, reaches a few pixels past the page's edge, so there the
    desk passes for ink. Judged on `gray` (dark ink on light, the image `ink` came from): the pixels two out from
    the part's ink against the desk's darkness.
    """
    height, width = ink.shape
    ring_kernel = np.ones((5, 5), np.uint8)
    desk = DESK_DARK * bright_paper(gray)
    edges = set()
    for label, box in boxes.items():
        inked, y0, x0 = _part_ink(ink, labels, cell, label, box)
        if not inked.any():
            continue
        oy, ox = min(y0, 2), min(x0, 2)  # room for the ring, within the image
        window = gray[y0 - oy : min(y0 + inked.shape[0] + 2, height), x0 - ox : min(x0 + inked.shape[1] + 2, width)]
        mask = np.zeros(window.shape, np.uint8)
        mask[oy : oy + inked.shape[0], ox : ox + inked.shape[1]] = inked
        part = mask.view(bool)
        ring = cv2.dilate(mask, ring_kernel).view(bool) & ~part
        around = window[ring]
        if around.size and np.count_nonzero(around <= desk) > DESK_EDGE * around.size:
            edges.add(label)
    return edges


def _part_ink(
    ink: np.ndarray, labels: np.ndarray, cell: int, label: int, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, int, int]:
    """A part's ink over SOLID_INK, in pixels, within its box of grid cells `box` (top, bottom, left, right), and
    the box's top-left pixel (row, column)."""
    top, bottom, left, right = box
    cells = labels[top : bottom + 1, left : right + 1] == label
    inside = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)  # the part's cells, in pixels
    window = ink[top * cell : (bottom + 1) * cell, left * cell : (right + 1) * cell]  # clipped at the image's edge
    return (window > SOLID_INK) & inside[: window.shape[0], : window.shape[1]], top * cell, left * cell


def _drop_solid(
    ink: np.ndarray, labels: np.ndarray, cell: int, boxes: dict[int, tuple[int, int, int, int]], best: int
) -> int:
    """Remove from `boxes` the parts that are solid patches rather than strokes; return the best part left.

    A part's width is 2 × area / perimeter of its ink (exact for long strokes, the half-width of a round blob).
    The part with the longest outline is the reference stroke: a pencil digit next to the tip of a shadow, which
    survives the background division as a weaker, wide patch, has the longer outline though less ink⁴. Parts
    SOLID times wider than it go; thin specks beside a marker digit stay (they are narrower, not wider).
    """
    widths: dict[int, float] = {}
    outlines: dict[int, int] = {}
    for label, box in boxes.items():
        area, outlines[label] = area_and_outline(_part_ink(ink, labels, cell, label, box)[0])
        widths[label] = 2.0 * area / max(outlines[label], 1)
    longest = max(outlines, key=outlines.__getitem__)
    for label, part_width in widths.items():
        if label != longest and part_width > SOLID * max(widths[longest], 1.0):
            del boxes[label]
    return best if best in boxes else longest


def stroke_width(patch: np.ndarray) -> float | None:
    """Stroke width of the ink in `patch` (cropped to it), in pixels at the 20-pixel scale the digit will have;
    None without strong ink.

    Estimated as 2 × area / perimeter of the strong ink (above half strength): exact for long strokes of any
    shape. MNIST digits measure 2.0 (median; 95 % under 3.1).
    """
    area, perimeter = area_and_outline(patch > 0.5)
    if area == 0 or perimeter == 0:
        return None
    return 2.0 * area / perimeter * BOX / max(patch.shape)


def fit_stroke_width(patch: np.ndarray, notes: CueNotes | None = None) -> np.ndarray:
    """Bring the strokes of `patch` (cropped to the ink) toward MNIST's width: thicken fine pen and pencil
    lines, thin felt-tip strokes (`notes`, when given, records the width measured before either).

    Width (`stroke_width`) is judged at the 20-pixel scale the digit will have. Strokes under FINE_STROKE are
    widened to THICKEN_TO by a grey dilation with a disk (round, so diagonal strokes widen as much as straight
    ones); strokes over THICK_STROKE are eroded to THIN_STROKE. MNIST's own strokes lie between.
    """
    width = stroke_width(patch)
    if notes is not None:
        notes.stroke_width = width
    if width is None:
        return patch
    scale = BOX / max(patch.shape)
    if width < FINE_STROKE:
        radius = round((THICKEN_TO - width) / 2 / scale)  # patch pixels
        if radius < 1:
            return patch
        padded = np.pad(np.ascontiguousarray(patch, dtype=np.float32), radius)  # room to grow past the crop
        return max_filter(padded, 2 * radius + 1, disk=True)
    if width <= THICK_STROKE:
        return patch
    radius = int((width - THIN_STROKE) / 2 / scale)  # patch pixels; rounded down: a square window erodes more
    if radius < 1:
        return patch
    return min_filter(np.ascontiguousarray(patch), 2 * radius + 1)
