"""app.preprocess.rulings: printed lines of squared and lined paper are erased, the digit and lone strokes stay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.preprocess import to_mnist_pixels
from app.preprocess.rulings import erase_rulings
from tests.preprocess.images import encode, glyph, on_paper, ruled, similarity


def gray_of(image: Image.Image) -> np.ndarray:
    """The darkest channel, as the pipeline reads dark ink on light paper (uint8)."""
    return np.asarray(image).min(axis=2)


@pytest.mark.parametrize("tilt", [0.0, 3.0, -5.0])
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "lined"])
def test_grid_crossing_the_digit_is_read_as_the_digit_alone(squared: bool, tilt: float, reference: np.ndarray) -> None:
    page = ruled(glyph(200), squared=squared, tilt=tilt)
    # unerased, the rulings kept with the digit score 0.25–0.71 here (0.997 for untilted lines, which the
    # later steps drop anyway); a stub of a ruling touching a stroke can stay
    assert similarity(to_mnist_pixels(encode(page, "JPEG", quality=90)), reference) > 0.8


def test_rulings_are_lifted_to_the_paper_and_the_digit_stays() -> None:
    page = ruled(glyph(200), size=(600, 450), at=(200, 120), spacing=40, tilt=2.0)
    gray = gray_of(page.resize((256, 192), Image.Resampling.BOX))  # the working copy's scale
    ink = np.asarray(glyph(200).resize((85, 85), Image.Resampling.BOX)) > 128  # the 7 at that scale
    digit = np.zeros(gray.shape, bool)
    digit[51 : 51 + 85, 85 : 85 + 85] = ink
    away = np.ones(gray.shape, bool)
    away[40:150, 75:180] = False  # well clear of the digit...
    away[:3], away[-3:], away[:, :3], away[:, -3:] = False, False, False, False  # ...and of lines cut by the edge
    erased = erase_rulings(gray)
    paper = float(np.median(gray[away]))
    assert gray[away].min() < paper - 80  # the lines were there...
    assert erased[away].min() > paper - 20  # ...and less than a quarter of their darkness is left
    assert np.median(erased[digit]) < paper - 100  # the strokes are still dark


def test_page_without_rulings_is_left_alone() -> None:
    gray = gray_of(on_paper(glyph(200)))
    assert erase_rulings(gray) is gray


def test_lone_full_height_stroke_is_not_a_ruling() -> None:
    canvas = Image.new("RGB", (300, 300), (250, 250, 250))
    ImageDraw.Draw(canvas).line([(150, 0), (148, 299)], fill=(20, 20, 20), width=3)  # a "1" filling the canvas
    gray = gray_of(canvas)
    assert erase_rulings(gray) is gray
