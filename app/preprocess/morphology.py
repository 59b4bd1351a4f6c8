"""Morphology shared by the ink and stroke steps: max/min filters, boolean dilation, grey reconstruction, and the
area and outline of a mask (whose ratio is the width of its strokes).

All are OpenCV's: its filters are vectorised C++, 5–50× faster than the same filters written with numpy on the
small working copies used here. Windows are clipped at the image edges (a pixel outside never wins a max or a
min), which is OpenCV's default border for dilation and erosion.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from app.preprocess.quantiles import median

cv2.setNumThreads(1)  # images here are small: thread hand-offs cost more than they save, and requests run in parallel


@functools.cache
def square(window: int) -> np.ndarray:
    """A window×window structuring element (cached: the same few sizes recur on every request)."""
    return np.ones((window, window), np.uint8)


@functools.cache
def _disk(window: int) -> np.ndarray:
    """The disk inscribed in a window×window square, as a structuring element (cached)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (window, window))


def as_uint8(gray: np.ndarray) -> np.ndarray:
    """A gray image as uint8 (itself if it already is; float values clipped to 0–255 and truncated): OpenCV's
    thresholds, contours and filters run fastest on 8-bit images."""
    return gray if gray.dtype == np.uint8 else np.clip(gray, 0, 255).astype(np.uint8)


def max_filter(values: np.ndarray, window: int, disk: bool = False) -> np.ndarray:
    """2-D maximum over a square window (or the disk inscribed in it: grey dilation), clipped at the edges;
    float32 or uint8 in, the same out."""
    if window <= 1:
        return values
    return cv2.dilate(values, _disk(window) if disk else square(window))


def min_filter(values: np.ndarray, window: int) -> np.ndarray:
    """2-D minimum over a square window (grey erosion), clipped at the edges; float32 or uint8 in, the same out."""
    if window <= 1:
        return values
    return cv2.erode(values, square(window))


def grow(cells: np.ndarray, steps: int = 1) -> np.ndarray:
    """Boolean dilation by a 3×3 square, `steps` times (a (2·steps+1)² square, in one pass)."""
    return cv2.dilate(cells.view(np.uint8), square(2 * steps + 1)).view(bool)


def least_side_maximum(stack: np.ndarray) -> np.ndarray:
    """Per pixel of each image of a K×H×W stack (float32 or uint8): the highest value on the straight way from it
    to each of its image's four sides (itself included), the least of the four; K×H×W.

    Running maxima, one from each side: a dilation by a window as long as the side, anchored at its end, reads the
    pixels from the image's edge up to the pixel (the window is clipped at the edge). Rows are taken with the images
    stacked one under another, columns with them side by side, so that no window reaches into the next image. The
    same values as numpy's `maximum.accumulate` from each side, in ~40 % of its time (86 against 208 µs on the
    4×48×64 stacks of a 1,024×768 photo): numpy accumulates each row and column in a call of its own.
    """
    count, height, width = stack.shape
    rows = stack.reshape(count * height, width)
    across = np.ones((1, width), np.uint8)
    horizontal = cv2.min(cv2.dilate(rows, across, anchor=(width - 1, 0)), cv2.dilate(rows, across, anchor=(0, 0)))
    columns = np.ascontiguousarray(stack.transpose(1, 0, 2)).reshape(height, count * width)
    down = np.ones((height, 1), np.uint8)
    vertical = cv2.min(cv2.dilate(columns, down, anchor=(0, height - 1)), cv2.dilate(columns, down, anchor=(0, 0)))
    vertical = vertical.reshape(height, count, width).transpose(1, 0, 2)
    return np.minimum(horizontal.reshape(count, height, width), vertical)


def reconstruct_by_erosion(marker: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Grey reconstruction by erosion of `marker` (≥ `floor` everywhere) above `floor`: 3×3 erosions, each
    clipped below at `floor`, until nothing changes. Both float32; returns a new array.

    The front advances one pixel per pass, so a pass is checked for change only every fourth time.
    """
    kernel = square(3)
    marker = np.maximum(marker, floor)
    for iteration in range(sum(marker.shape)):
        previous = marker if iteration % 4 == 3 else None
        marker = cv2.max(cv2.erode(marker, kernel), floor)
        if previous is not None and np.array_equal(previous, marker):
            break
    return marker


def reconstruct_side_by_side(markers: list[np.ndarray], floors: list[np.ndarray]) -> list[np.ndarray]:
    """`reconstruct_by_erosion` of each marker above its floor (float32 images, all of one height), in one run.

    Why: on small images a pass costs mostly the calls' overhead, so two images side by side cost about what one
    does. They are parted by a column of +inf, marker and floor, which no erosion crosses (a minimum never picks
    it, and its floor keeps it there), so each result is exactly what it would be alone.
    """
    if len(markers) == 1:
        return [reconstruct_by_erosion(markers[0], floors[0])]
    wall = np.full((markers[0].shape[0], 1), np.inf, np.float32)
    joined = reconstruct_by_erosion(
        np.hstack([part for marker in markers for part in (marker, wall)][:-1]),
        np.hstack([part for floor in floors for part in (floor, wall)][:-1]),
    )
    starts = np.cumsum([0] + [marker.shape[1] + 1 for marker in markers])
    return [joined[:, start : start + marker.shape[1]] for start, marker in zip(starts, markers, strict=False)]


def area_and_outline(mask: np.ndarray) -> tuple[int, int]:
    """A boolean mask's pixel count and its outline's length (pixel sides between it and the rest, the image's
    edge counting as the rest). 2 × area / outline is the width of long strokes of any shape, the half-width of a
    round blob."""
    inner = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    edges = sum(np.count_nonzero(side) for side in (mask[0], mask[-1], mask[:, 0], mask[:, -1]))  # without np.pad,
    return int(np.count_nonzero(mask)), int(inner + edges)  # which cost 2× the counting


RIDGE_MARGIN = 2
"""Empty pixels `ridge_width` keeps around a mask's box. Two are enough for every value it reads to be what the whole
image gives: the 5×5 distance mask steps at most 2 pixels, so a step out of the box lands on this empty ring, where the
distance is 0 and never less out beyond it; the 3×3 maximum and the 5×5 crowd around a pixel of the box stay within
it, and add only zeros from outside it. Where the box meets the image's edge, so does the crop."""


def ridge_width(mask: np.ndarray, crowd: int = 0) -> float:
    """The typical width of a mask's strokes: twice the median distance to the mask's edge along its ridges (the
    pixels at least as far from the edge as each of their neighbours: the medial axis, roughly), counting only
    ridge pixels with at least `crowd` mask pixels in the 5×5 window around them; 0.0 if there are none.

    Unlike 2 × area / outline (`area_and_outline`), one solid patch barely moves it: a patch adds a few ridge
    pixels, however wide, and long strokes add many. Specks would add many narrow ones, each its own ridge:
    `crowd` 5 leaves out those of fewer than 5 pixels (a line through the window, in any direction, has 5).
    """
    left, top, width, height = cv2.boundingRect(mask.view(np.uint8))
    if width == 0:
        return 0.0
    # only the mask's box and RIDGE_MARGIN px around it: the same values (see RIDGE_MARGIN), and a digit's box is
    # ~12 % of a photo's working copy (104 against 37 µs)
    box = np.s_[
        max(0, top - RIDGE_MARGIN) : top + height + RIDGE_MARGIN,
        max(0, left - RIDGE_MARGIN) : left + width + RIDGE_MARGIN,
    ]
    cells = np.ascontiguousarray(mask[box]).view(np.uint8)
    distance = cv2.distanceTransform(cells, cv2.DIST_L2, cv2.DIST_MASK_5)
    ridge = (distance > 0) & (distance >= max_filter(distance, 3))
    if crowd > 0:
        ridge &= cv2.boxFilter(cells, -1, (5, 5), normalize=False, borderType=cv2.BORDER_CONSTANT) >= crowd
    widths = distance[ridge]
    return 2.0 * median(widths) if widths.size else 0.0
