"""From ink strength to the digit's strokes: noise thresholded to 0, only the digit kept, marker strokes thinned."""

from __future__ import annotations

import math

import numpy as np

from app.preprocess.digit import BOX
from app.preprocess.errors import ImageError
from app.preprocess.morphology import grow, running_extreme

GRID_CELLS = 32
"""Cells along the longer side of the grid on which strokes are grouped into parts."""
THICK_STROKE = 2.9
"""Stroke width (px at the 20-px scale) above which strokes are thinned; 90 % of MNIST digits are thinner."""
THIN_STROKE = 2.3
"""Stroke width that thinning aims for (MNIST's median is 2.0)."""


def threshold_noise(ink: np.ndarray) -> np.ndarray:
    """Stretch ink strength so strokes are ~1 and paper texture, JPEG noise and faint shadows are exactly 0.

    The stroke level is the strength of the strongest ink (the value a thousandth of the pixels exceed, so a
    few specks cannot set it). Pixels within one pixel of ink at 40 % of that level keep their strength
    above the paper's own noise floor (median + 5 robust standard deviations of the pixels well below the
    stroke level, so a digit covering much of the image does not count as noise), so antialiased edges
    survive as in MNIST; everything else is background. An image without such ink has no digit.
    """
    rank = max(10, ink.size // 1000)
    candidates = ink[ink > 0.02]  # partitioning only these is fast; the many equal zeros make it slow
    level = float(np.partition(candidates, -rank)[-rank]) if candidates.size >= rank else 0.0
    step = max(1, int(math.sqrt(ink.size / 8192)))
    sample = ink[::step, ::step]
    paper = sample[sample < 0.25 * level]
    typical = float(np.median(paper)) if paper.size else 1.0
    spread = 1.4826 * float(np.median(np.abs(paper - typical))) if paper.size else 0.0
    floor = typical + 5.0 * spread + 0.03
    strong = ink > max(floor, 0.4 * level)
    if level < max(0.08, floor) or np.count_nonzero(strong) < rank:
        raise ImageError(
            "no digit found: the image looks blank; draw or photograph a single dark digit on a "
            "light background (or a light one on dark)"
        )
    soft = np.clip((ink - floor) / max(0.9 * level - floor, 1e-3), 0.0, 1.0)
    return np.where(grow(strong), soft, np.float32(0.0))


def keep_digit(ink: np.ndarray) -> np.ndarray:
    """Zero everything but the digit: the group of nearby strokes with the most strong ink, plus small parts
    close to it.

    Strokes are grouped on a coarse grid (cells of 1/32 of the image, grown by one cell so a pen lifted
    briefly still joins). Mass is counted as ink², so a solid patch of moderately dark shadow or a smudge
    loses to real strokes. Groups within a third of the digit-so-far's size are added, repeatedly (a
    detached bar of a 5, a dotted stroke); specks and shadows elsewhere are dropped.
    """
    height, width = ink.shape
    cell = max(2, math.ceil(max(height, width) / GRID_CELLS))
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, cols * cell), np.float32)
    padded[:height, :width] = ink
    blocks = padded.reshape(rows, cell, cols, cell)
    occupied = blocks.sum(axis=(1, 3)) > 0.5 * cell  # at least half a cell-width of solid stroke
    strength = np.square(blocks).sum(axis=(1, 3))
    labels, masses = _label_cells(grow(occupied), strength)
    if not masses or max(masses) <= 0.0:
        raise ImageError("no digit found: draw or photograph a single digit")
    best = int(np.argmax(masses)) + 1
    boxes = {
        label: _cell_box(labels == label)
        for label, value in enumerate(masses, start=1)
        if label == best or value >= 0.05 * masses[best - 1]
    }
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
    cells = np.isin(labels, list(keep))
    mask = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]
    return np.where(mask, ink, np.float32(0.0))


def _cell_box(cells: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) cell indices of a non-empty boolean grid, inclusive."""
    rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _label_cells(cells: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """8-connected components of a small boolean grid (labels 1..n, 0 = empty) and the `mass` of each."""
    todo = set(zip(*(index.tolist() for index in np.nonzero(cells)), strict=True))
    labels = np.zeros(cells.shape, np.int32)
    masses: list[float] = []
    while todo:  # plain Python sets: on a grid of at most 32×32 cells, faster than numpy indexing
        stack = [todo.pop()]
        members = []
        while stack:
            r, c = stack.pop()
            members.append((r, c))
            for neighbour in (
                (r - 1, c - 1),
                (r - 1, c),
                (r - 1, c + 1),
                (r, c - 1),
                (r, c + 1),
                (r + 1, c - 1),
                (r + 1, c),
                (r + 1, c + 1),
            ):
                if neighbour in todo:
                    todo.remove(neighbour)
                    stack.append(neighbour)
        rows, cols = zip(*members, strict=True)
        labels[rows, cols] = len(masses) + 1
        masses.append(float(mass[rows, cols].sum()))
    return labels, masses


def thin_strokes(patch: np.ndarray) -> np.ndarray:
    """Erode strokes much thicker than MNIST's (a felt-tip marker) back to a typical MNIST width.

    Width is estimated as 2 × area / perimeter of the ink and judged at the 20-pixel scale the digit will
    have: MNIST digits measure 2.0 px (95 % under 3.1), so only strokes above THICK_STROKE are thinned, to
    THIN_STROKE.
    """
    inked = np.pad(patch > 0.5, 1)
    area = np.count_nonzero(inked)
    perimeter = np.count_nonzero(inked[1:] != inked[:-1]) + np.count_nonzero(inked[:, 1:] != inked[:, :-1])
    if area == 0 or perimeter == 0:
        return patch
    scale = BOX / max(patch.shape)
    width = 2.0 * area / perimeter * scale
    radius = int((width - THIN_STROKE) / 2 / scale)  # patch pixels; rounded down: a square window erodes more
    if width <= THICK_STROKE or radius < 1:
        return patch
    return running_extreme(np.ascontiguousarray(patch), 2 * radius + 1, np.minimum)
