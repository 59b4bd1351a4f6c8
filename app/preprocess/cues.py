"""Cheap measurements of an upload's ink that say how much it looks like one handwritten digit.

They are facts, not a verdict: whoever decides "is this one digit?" (issue 11) weighs them, with thresholds
fitted on held-out data. Most come for free from steps that run anyway (the steps record them in a `CueNotes`
when given one); the rest are measured on the 28×28 result, so that they mean the same for a photo and for an
MNIST-format upload that skipped the photo pipeline. Together they cost ~0.1–0.2 ms per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.preprocess.digit import BOX

STRONG = 0.5
"""Ink strength (of 1) above which a pixel counts as stroke for parts, coverage and holes (128 of 255)."""
PART_SHARE = 0.05
"""A separate part is significant when it holds at least this share of the image's strong ink."""
HOLE_AREA = 2
"""Enclosed background regions of the 28×28 result smaller than this many pixels are noise, not holes."""


@dataclass(frozen=True)
class Cues:
    """What the preprocessing saw of an upload's ink, besides the 28×28 pixels.

    Typical values for MNIST test digits are given with each field, for orientation, not as thresholds.
    """

    parts: int
    """Separate significant ink parts (8-connected strokes holding ≥ PART_SHARE of the strong ink) before
    anything was dropped as not-the-digit. One digit: 1 (MNIST test and the photo renders: 98 %), sometimes
    2–3 (the detached bar of a 5, a broken stroke); "987": 3 or more."""
    dropped_ink: float
    """Share (0–1) of the ink mass that was dropped as not belonging to the digit (specks, smudges, other
    characters far away). 0 for a clean single digit and for MNIST-format uploads."""
    aspect: float
    """Width / height of the digit's ink in the 28×28 result (MNIST test: 5th/50th/95th percentile
    0.30/0.75/1.05; several characters side by side are wider)."""
    coverage: float
    """Share (0–1) of the digit's bounding box in the 28×28 result covered by strong ink (MNIST test
    0.20/0.33/0.49; a filled blob or dense hatching is near 1)."""
    stroke_width: float
    """Stroke width at MNIST's 20-pixel scale, measured before any thinning (MNIST test 1.2/1.8/2.9 measured
    on the 28×28 digits; photo renders 1.5/2.2/3.1); 0 when there is no strong ink."""
    holes: int
    """Enclosed background regions of the 28×28 result of at least HOLE_AREA pixels. MNIST test means per
    digit: 0 for 1 and 7, ≤ 0.1 for 3, 4, 5, 0.4 for 2 (a looped tail), ~0.8 for 0, 6, 9, 1.5 for 8. Many holes
    means a scribble, hatching or a grid."""
    inverted: bool
    """The upload was light ink on a dark background (chalkboard, dark mode, MNIST itself), so it was inverted
    (an MNIST-format upload is light on dark by definition: True)."""
    touches_edge: bool
    """The kept ink reaches the edge of the upload: the digit may be cut off."""
    mnist_format: bool
    """The upload already was an MNIST-format 28×28 digit and passed through untouched."""


class CueNotes:
    """What the steps record while they run (`to_mnist_pixels(..., notes=...)`); `cues()` completes it.

    Left untouched (an MNIST-format upload skips the steps), every cue is measured on the 28×28 pixels.
    """

    def __init__(self) -> None:
        self.inverted = False
        self.stroke_width: float | None = None
        self.parts: int | None = None
        self.dropped_ink = 0.0
        self.touches_edge = False

    def record_parts(self, ink: np.ndarray, kept: np.ndarray) -> None:
        """Called by `keep_digit` with the ink map before (`ink`) and after (`kept`) it dropped what is not the
        digit (both float in [0, 1], same shape)."""
        self.parts = significant_parts(ink > STRONG)
        total = float(ink.sum())
        self.dropped_ink = max(0.0, 1.0 - float(kept.sum()) / total) if total > 0 else 0.0
        left, top, width, height = cv2.boundingRect((kept > 0).view(np.uint8))
        rows, cols = kept.shape
        self.touches_edge = width > 0 and (left == 0 or top == 0 or left + width == cols or top + height == rows)

    def cues(self, pixels: np.ndarray) -> Cues:
        """The finished cues, given the 28×28 uint8 result (white ink on black)."""
        return self.complete(measure_pixels(pixels[None])[0])

    def complete(self, measured: np.ndarray | list[float]) -> Cues:
        """The finished cues, given the row of `measure_pixels` for this upload's 28×28 result (for measuring
        many uploads' results at once: see `measure_pixels`)."""
        parts, aspect, coverage, width_28, holes = (float(value) for value in measured)
        mnist_format = self.parts is None  # the steps never ran: everything from the 28×28 digit
        return Cues(
            parts=int(parts) if mnist_format else self.parts,  # type: ignore[arg-type]  # set when not mnist_format
            dropped_ink=self.dropped_ink,
            aspect=aspect,
            coverage=coverage,
            stroke_width=width_28 if mnist_format else float(self.stroke_width or 0.0),
            holes=int(holes),
            inverted=self.inverted or mnist_format,
            touches_edge=self.touches_edge,
            mnist_format=mnist_format,
        )


MEASURED = ("parts", "aspect", "coverage", "stroke_width", "holes")
"""The columns of `measure_pixels`: the cues measured on the 28×28 result (parts and stroke width are used only
for MNIST-format uploads; the photo pipeline measures them before cropping)."""


def measure_pixels(pixels: np.ndarray) -> np.ndarray:
    """The 28×28-measured cues (`MEASURED`) of N uint8 images (N×28×28, white ink on black), as N×5 float64.

    Vectorised over the batch (fitting the digit gate measures tens of thousands): per image they cost ~50–80 µs,
    mostly numpy and OpenCV call overhead on a tiny array; for a batch of 32, ~13 µs each. All images are stacked into
    one tall image with a line of background between them (so no part or hole spans two), and each measurement
    is one numpy or OpenCV call over it (tested equal to the per-image functions).
    """
    count, rows, cols = pixels.shape
    pitch = rows + 1  # image i owns the stacked rows i·pitch + 1 ... (i + 1)·pitch - 1
    stacked = np.zeros((count * pitch + 1, cols + 2), np.uint8)
    stacked[:-1].reshape(count, pitch, cols + 2)[:, 1:, 1:-1] = pixels
    per_image = stacked[:-1].reshape(count, pitch, cols + 2)
    measured = np.zeros((count, len(MEASURED)), np.float64)

    column_ink = per_image.max(axis=1) > 0  # N × columns: any ink in the column
    row_ink = per_image.max(axis=2) > 0
    left, width = _extent(column_ink)
    top, height = _extent(row_ink)
    strong = (stacked > round(STRONG * 255)).view(np.uint8)
    strong_count = np.count_nonzero(strong[:-1].reshape(count, -1), axis=1)
    box = width * height
    measured[:, 1] = np.where(height > 0, width / np.maximum(height, 1), 0.0)
    measured[:, 2] = np.where(box > 0, strong_count / np.maximum(box, 1), 0.0)
    measured[:, 3] = _stroke_widths(stacked, count, pitch, np.maximum(width, height))
    measured[:, 0], measured[:, 4] = _parts_and_holes(strong, count, pitch, strong_count)
    return measured


def _extent(occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and length of the occupied span of each row of the N×L boolean `occupied` (0, 0 if none)."""
    length = occupied.shape[1]
    first = occupied.argmax(axis=1)
    last = length - occupied[:, ::-1].argmax(axis=1)
    span = np.where(occupied.any(axis=1), last - first, 0)
    return first, span


def _stroke_widths(stacked: np.ndarray, count: int, pitch: int, side: np.ndarray) -> np.ndarray:
    """`strokes.stroke_width` of each stacked image cropped to its ink (`side`: the crop's longer side), 0 without
    ink: 2 × area / perimeter of the ink above half strength (value / 255 > 0.5, i.e. > 127 for uint8), scaled.

    The crop holds all that ink and the stack has background all around each image, so area and perimeter over
    the stack's rows of one image are the crop's."""
    ink = (stacked > 127).view(np.uint8)
    area = np.count_nonzero(ink[:-1].reshape(count, -1), axis=1)
    vertical = np.count_nonzero((ink[1:] != ink[:-1]).reshape(count, -1), axis=1)  # pitch rows of changes each
    horizontal = np.count_nonzero((ink[:-1, 1:] != ink[:-1, :-1]).reshape(count, -1), axis=1)
    perimeter = vertical + horizontal
    widths = np.zeros(count, np.float64)
    some = (area > 0) & (perimeter > 0)
    widths[some] = 2.0 * area[some] / perimeter[some] * BOX / side[some]
    return widths


def _parts_and_holes(strong: np.ndarray, count: int, pitch: int, strong_count: np.ndarray) -> tuple[np.ndarray, ...]:
    """`significant_parts` and `count_holes` of each stacked stroke mask (uint8 0/1), one OpenCV call each: a
    component's image is its top row // pitch (the separating lines keep it inside one image)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    stats = stats[1:]  # label 0: the background
    image_of = stats[:, cv2.CC_STAT_TOP] // pitch
    areas = stats[:, cv2.CC_STAT_AREA]
    parts = np.bincount(image_of[areas >= PART_SHARE * strong_count[image_of]], minlength=count)

    _, labels, stats, _ = cv2.connectedComponentsWithStats(1 - strong, connectivity=4)
    stats[labels[0, 0], cv2.CC_STAT_AREA] = 0  # the separating lines and all open to them: each image's outside
    stats = stats[1:]  # label 0: the strokes
    holes = np.bincount(stats[stats[:, cv2.CC_STAT_AREA] >= HOLE_AREA, cv2.CC_STAT_TOP] // pitch, minlength=count)
    return parts, holes


def significant_parts(strong: np.ndarray) -> int:
    """8-connected parts of a boolean stroke mask holding at least PART_SHARE of its pixels."""
    count, labels = cv2.connectedComponents(strong.view(np.uint8), connectivity=8)  # ...WithStats: 7× slower
    areas = np.bincount(labels[strong], minlength=count)[1:]  # counting only the strokes' labels: 10× faster
    return int(np.count_nonzero(areas >= PART_SHARE * areas.sum())) if areas.size else 0


def count_holes(strong: np.ndarray) -> int:
    """Background regions (4-connected, the dual of 8-connected strokes) of at least HOLE_AREA pixels that do
    not reach the border of the boolean stroke mask `strong`."""
    background = np.pad(~strong, 1, constant_values=True)  # one region all around: the outside
    count, labels = cv2.connectedComponents(background.view(np.uint8), connectivity=4)
    areas = np.bincount(labels.ravel(), minlength=count)
    areas[labels[0, 0]] = 0  # the outside
    return int(np.count_nonzero(areas[1:] >= HOLE_AREA))
