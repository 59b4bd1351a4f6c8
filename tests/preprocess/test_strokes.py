"""app.preprocess.strokes: noise is no digit, marker strokes are thinned to MNIST's width."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app.preprocess import inspect_upload, to_mnist_pixels
from app.preprocess.strokes import keep_digit, stroke_width, threshold_noise
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


def _ink(shape: tuple[int, int] = (200, 260)) -> np.ndarray:
    return np.zeros(shape, np.float32)


def test_a_solid_shadow_patch_next_to_a_pencil_digit_is_dropped() -> None:
    ink = _ink()
    ink[40:170, 180:182] = 1.0  # a pencil "1", two pixels wide
    ink[90:130, 60:150] = 0.45  # the tip of a shadow, as `threshold_noise` leaves it: solid and weaker
    kept = keep_digit(ink)
    assert np.array_equal(kept[:, 170:], ink[:, 170:])  # the stroke untouched
    assert not kept[:, :160].any()  # the patch gone


def test_a_marker_digit_keeps_the_thin_stroke_beside_it() -> None:
    ink = _ink()
    ink[40:170, 100:116] = 1.0  # a marker "1", sixteen pixels wide
    ink[60:62, 125:165] = 1.0  # a thin stroke beside it (a pen's flag, a dotted bar): wider parts are not solid
    kept = keep_digit(ink)
    assert np.array_equal(kept, ink)


def test_a_sliver_along_the_desk_loses_to_a_faint_digit_on_the_page() -> None:
    gray = np.full((200, 260), 150, np.uint8)  # the page...
    gray[:, :45] = 30  # ...photographed on a dark desk
    gray[60:160, 150:152] = 90  # a faint pencil "1"
    ink = _ink()
    ink[20:60, 40:45] = 0.7  # the desk just past the page's edge, passing for strong ink
    ink[60:160, 150:152] = 0.4  # the "1": weaker, so it has less ink⁴ than the sliver
    assert keep_digit(ink)[:, 40:45].any()  # without the image, the sliver wins
    kept = keep_digit(ink, gray=gray)
    assert np.array_equal(kept[:, 140:], ink[:, 140:])  # the stroke untouched
    assert not kept[:, :100].any()  # the sliver gone


def test_a_wedge_of_desk_whose_ring_is_partly_lighter_desk_loses_to_a_faint_digit() -> None:
    gray = np.full((200, 260), 200, np.uint8)  # the page...
    gray[:, :40] = 80  # ...on a desk,
    gray[:, 40:45] = 50  # darkest right at the page's edge (its shadow)
    gray[60:160, 150:152] = 120  # a faint pencil "1"
    ink = _ink()
    ink[20:60, 40:45] = 0.7  # the darkest desk, passing for strong ink
    ink[60:160, 150:152] = 0.4
    kept = keep_digit(ink, gray=gray)
    # Judged against its own darkness (50), as before DESK_DARK, too little of the sliver's ring was as dark: the
    # lighter desk beside it (80) is still far darker than paper
    assert np.array_equal(kept[:, 140:], ink[:, 140:])
    assert not kept[:, :100].any()


def test_a_faint_stroke_in_a_shadow_is_not_taken_for_the_desks_edge() -> None:
    rng = np.random.default_rng(0)
    gray = np.full((200, 260), 200, np.uint8)
    gray[:, 100:] = rng.integers(104, 117, size=(200, 160))  # a grainy shadow over the right of the page
    gray[60:160, 150:152] = 108  # a pencil "1" in it, barely darker than the shadow
    gray[:, :3] = 30  # a thin strip of desk along the left edge
    ink = _ink()
    ink[60:160, 150:152] = 0.4
    ink[80:100, 0:3] = 0.5  # the desk past the page's edge, passing for ink
    kept = keep_digit(ink, gray=gray)
    # Judged against its own darkness (108), as before DESK_DARK, the "1" passed for an edge (much of the grain
    # around it is as dark), was dropped, and the desk's sliver was kept
    assert np.array_equal(kept[:, 140:], ink[:, 140:])
    assert not kept[:, :100].any()


def test_the_faint_stretch_of_a_stroke_stays_joined_to_it_and_faint_specks_alone_go() -> None:
    # paper with a little noise; a stroke pressed hard for half its length (ink 0.8) and lightly for the rest (0.3,
    # under 40 % of the stroke level but over `strokes.WEAK_INK`, 25 %, of it); a speck as faint as that, alone
    ink = np.random.default_rng(0).normal(0.02, 0.005, (120, 160)).clip(0, 1).astype(np.float32)
    ink[20:100, 40:43] = 0.8  # the hard half
    ink[100:115, 40:43] = 0.3  # the light half, 15 px on
    ink[30:34, 120:124] = 0.3  # the speck
    out = threshold_noise(ink)
    assert out[100:115, 40:43].min() > 0.2  # the light half is ink all along (only its first pixel was, before)
    assert out[30:34, 120:124].max() == 0.0  # the speck is not
    assert out[20:100, 40:43].min() > 0.9
