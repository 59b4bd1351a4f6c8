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

from app.preprocess.strokes import stroke_width

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
        strong = pixels > round(STRONG * 255)
        left, top, width, height = cv2.boundingRect((pixels > 0).view(np.uint8))
        box = strong[top : top + height, left : left + width]
        mnist_format = self.parts is None  # the steps never ran: everything from the 28×28 digit
        if self.parts is None:
            parts, width_here = (
                significant_parts(strong),
                stroke_width(pixels[top : top + height, left : left + width] / 255.0),
            )
        else:
            parts, width_here = self.parts, self.stroke_width
        return Cues(
            parts=parts,
            dropped_ink=self.dropped_ink,
            aspect=width / height if height else 0.0,
            coverage=float(np.count_nonzero(box)) / box.size if box.size else 0.0,
            stroke_width=float(width_here or 0.0),
            holes=count_holes(strong),
            inverted=self.inverted or mnist_format,
            touches_edge=self.touches_edge,
            mnist_format=mnist_format,
        )


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
