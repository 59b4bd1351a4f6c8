"""app.preprocess.ink: one polarity (dark ink on light paper), transparency flattened."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from app.preprocess import to_mnist_pixels
from app.preprocess.ink import light_background
from tests.preprocess.images import encode, glyph, on_paper, similarity


def test_dark_ink_on_light_paper_is_inverted(reference: np.ndarray) -> None:
    pixels = to_mnist_pixels(encode(on_paper(glyph(200)), "JPEG", quality=80))
    assert similarity(pixels, reference) > 0.9


def test_light_ink_on_dark_background_is_not_inverted(reference: np.ndarray) -> None:
    board = on_paper(glyph(200), ink_rgb=(230, 230, 220), paper_rgb=(40, 60, 45))  # chalk on a blackboard
    assert similarity(to_mnist_pixels(encode(board, "PNG")), reference) > 0.9


def test_canvas_export_with_transparent_background_is_flattened(reference: np.ndarray) -> None:
    alpha = glyph(280)
    black_strokes = Image.merge("RGBA", (*Image.new("RGB", alpha.size, 0).split(), alpha))  # (0,0,0,0) background
    white_strokes = Image.merge("RGBA", (*Image.new("RGB", alpha.size, (255,) * 3).split(), alpha))
    assert np.asarray(black_strokes.convert("RGB")).max() == 0  # dropping alpha would leave nothing to read
    for canvas in (black_strokes, white_strokes):
        assert similarity(to_mnist_pixels(encode(canvas, "PNG")), reference) > 0.95


def test_thick_canvas_digit_touching_every_edge_is_read(reference: np.ndarray) -> None:
    ink = glyph(280).filter(ImageFilter.MaxFilter(15))
    ink = ink.crop(ink.getbbox())  # thick strokes covering 44 % of the canvas, running into all four edges
    canvas = Image.merge("RGBA", (*Image.new("RGB", ink.size, 0).split(), ink))
    assert similarity(to_mnist_pixels(encode(canvas, "PNG")), reference) > 0.9


def test_canvas_stroke_from_edge_to_edge_is_read() -> None:
    alpha = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(alpha).line([(150, 0), (130, 279)], fill=255, width=60)  # a fat "1", top edge to bottom
    canvas = Image.merge("RGBA", (*Image.new("RGB", alpha.size, (20, 40, 30)).split(), alpha))
    rows, cols = np.nonzero(to_mnist_pixels(encode(canvas, "PNG")) > 64)
    assert np.ptp(rows) + 1 == 20 and np.ptp(cols) + 1 <= 8


def test_page_on_a_dark_desk_is_not_inverted_and_the_desk_is_not_ink(reference: np.ndarray) -> None:
    page = on_paper(glyph(200), size=(400, 300), at=(100, 50), ink_rgb=(30, 30, 40))
    desk = Image.new("RGB", (520, 400), (60, 40, 25))  # wood: a dark border all around the page
    desk.paste(page, (70, 40))
    pixels = to_mnist_pixels(encode(desk, "JPEG", quality=85))
    assert similarity(pixels, reference) > 0.9  # the 7, not the page's outline or the desk


def test_a_thin_chalk_line_on_an_unevenly_lit_board_is_light_on_dark() -> None:
    rng = np.random.default_rng(0)
    board = rng.normal(55, 8, (256, 256))  # dark, grainy; its brightest half percent is still board
    board[:, 200:] += 25  # a lighter patch where the lamp falls
    chalk = np.zeros((256, 256), bool)
    chalk[60:200, 120] = True  # one pixel wide: 140 of 65,536 pixels, 0.2 %
    board[chalk] = 200
    values = np.clip(board, 0, 255).astype(np.uint8)
    assert not light_background(values)
    paper = 255 - values  # the same drawing as dark pencil on light paper
    assert light_background(paper)
