"""app.preprocess.strokes: noise is no digit, marker strokes are thinned to MNIST's width."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app.preprocess import inspect_upload, to_mnist_pixels
from app.preprocess.strokes import stroke_width
from tests.preprocess.images import encode, error_of, glyph, on_paper, pen_line, similarity


def test_thick_marker_strokes_are_thinned_to_mnist_width(reference: np.ndarray) -> None:
    marker = glyph(280).filter(ImageFilter.MaxFilter(21))  # strokes about three times as wide
    thick = to_mnist_pixels(encode(on_paper(marker, at=(60, 10), ink_rgb=(200, 30, 30)), "PNG"))
    assert np.count_nonzero(thick > 128) < 1.4 * np.count_nonzero(reference > 128)
    assert similarity(thick, reference) > 0.8


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (300, 200), (255, 255, 255)),
        Image.new("L", (28, 28), 0),
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        Image.fromarray(np.random.default_rng(1).normal(200, 3, (300, 400)).clip(0, 255).astype(np.uint8)),
    ],
    ids=["white sheet", "black square", "empty canvas", "grainy paper"],
)
def test_images_without_ink_are_no_digit_400(image: Image.Image) -> None:
    error = error_of(encode(image, "PNG"))
    assert error.status_code == 400 and "no digit" in str(error)


@pytest.mark.parametrize("size", [600, 1000])
def test_one_pixel_pen_line_gets_an_mnist_stroke_width(size: int, reference: np.ndarray) -> None:
    page = on_paper(pen_line(size, width=1), size=(size + 200, size), at=(100, 0), ink_rgb=(30, 40, 150))
    pixels, cues = inspect_upload(encode(page, "PNG"))
    assert cues.stroke_width < 0.6  # what was drawn: a hair line at the 20-px scale
    width = stroke_width(pixels / 255.0)
    assert width is not None and 1.5 < width < 2.2  # what the model sees: MNIST's median is 1.84 on this measure
    assert similarity(pixels, reference) > 0.75  # unthickened: 0.65–0.67, every pixel below 62 of 255
