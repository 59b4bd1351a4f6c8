"""app.preprocess.rulings: printed lines of squared and lined paper are erased, the digit and lone strokes stay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.preprocess import to_mnist_pixels
from app.preprocess.rulings import erase_margins, erase_rulings
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


def test_rulings_in_a_shadow_are_erased_as_fully_as_those_in_the_light() -> None:
    # faint squared paper at the working copy's scale: paper 240, 1-px rulings 18 levels darker every 16 px, and a
    # shadow (45 % of the light) over most of the lower half, where the rulings are only 8 levels deep
    gray = np.full((192, 256), 240.0, np.float32)
    gray[8::16, :] = 222.0
    gray[:, 10::16] = 222.0  # off the columns the tilt search samples (every 4th), as a ruling drifts across them
    gray[40:150, 128:131] = 60.0  # a stroke of the digit, crossing into the shadow
    gray[96:, 64:] *= 0.45
    shadowed = np.zeros(gray.shape, bool)
    shadowed[104:-4, 72:-4] = True  # inside the shadow, clear of its edges and of the image's...
    shadowed[:, 122:137] = False  # ...and of the stroke
    paper = 240.0 * 0.45
    assert gray[shadowed].min() < paper - 7  # the rulings are there...
    erased = erase_rulings(gray)
    assert erased[shadowed].min() > paper - 2  # ...and gone in the shadow too (the whole row and column counts)
    assert erased[110:150, 128:131].max() < 0.45 * 80  # the stroke in the shadow is as dark as it was


def test_page_without_rulings_is_left_alone() -> None:
    gray = gray_of(on_paper(glyph(200)))
    assert erase_rulings(gray) is gray


def test_lone_full_height_stroke_is_not_a_ruling() -> None:
    canvas = Image.new("RGB", (300, 300), (250, 250, 250))
    ImageDraw.Draw(canvas).line([(150, 0), (148, 299)], fill=(20, 20, 20), width=3)  # a "1" filling the canvas
    gray = gray_of(canvas)
    assert erase_rulings(gray) is gray


@pytest.mark.parametrize(("tilt", "spacing"), [(-6.0, 48), (5.0, 48), (8.0, 48), (5.0, 40), (-5.0, 54), (7.0, 44)])
def test_rulings_cut_by_the_frame_near_a_corner_are_erased_too(tilt: float, spacing: int) -> None:
    # Turned into the page's frame, the image leaves empty corners: a line near the top or bottom crosses only part
    # of the frame's width, and judged over all of it (not over its part inside the image) it fell short of ALONG
    # and stayed (71-79 dark pixels of such lines on the first three pages before). On the last three, a ruling the
    # image shows for under half its width was not judged at all (VISIBLE at 0.5: 37-62 dark pixels stayed)
    page = ruled(glyph(200), size=(600, 450), at=(200, 60), spacing=spacing, squared=False, tilt=tilt)
    gray = gray_of(page.resize((256, 192), Image.Resampling.BOX))
    away = np.ones(gray.shape, bool)
    away[15:130, 70:190] = False  # clear of the digit...
    away[:3], away[-3:], away[:, :3], away[:, -3:] = False, False, False, False  # ...and of the image's edge
    paper = float(np.median(gray[away]))
    assert np.count_nonzero(gray[away] < paper - 60) > 500  # the lines are there...
    assert np.count_nonzero(erase_rulings(gray)[away] < paper - 60) == 0  # ...and all gone, near the corners too


def test_a_faint_stroke_passing_a_crossing_keeps_its_ink_there() -> None:
    # squared paper at the working copy's scale (paper 240, 1-px rulings 25 levels darker every 16 px) and a steep
    # pencil stroke as faint as the rulings, passing beside their crossings
    gray = np.full((192, 256), 240.0, np.float32)
    gray[8::16, :] = 215.0
    gray[:, 10::16] = 215.0
    stroke = np.zeros(gray.shape, np.uint8)
    cv2.line(stroke, (90, 12), (150, 180), 1, 2)  # ~20° from vertical
    gray[stroke > 0] = 212.0
    ys, xs = np.mgrid[0:192, 0:256]
    off_row, off_column = np.abs((ys - 8 + 8) % 16 - 8), np.abs((xs - 10 + 8) % 16 - 8)
    beside = (stroke > 0) & (off_row <= 1) & (off_column == 2)  # on a row ruling, 2 px from a column ruling
    crossings = (off_row == 0) & (off_column == 0) & (stroke == 0)
    erased = erase_rulings(gray)
    assert np.count_nonzero(beside) >= 5
    # the square closing of a crossing used to take the stroke there too (3 levels of 28 were left)
    assert (240.0 - erased[beside]).min() > 20
    assert (240.0 - erased[crossings]).max() < 5  # the crossings themselves are still lifted


def _converging_page(squared: bool) -> np.ndarray:
    """Squared (or lined) paper shot at an angle, at the working copy's scale: paper 235, 1-px rulings 30 levels
    darker every 16 px, whose rows lean from -3° at the top to +3° at the bottom (and columns from -3° at the left
    to +3° at the right), as a page's parallel lines converge in a perspective photo."""
    gray = np.full((192, 256), 235, np.uint8)
    for row, y in enumerate(range(8, 192, 16)):
        lean = np.radians(-3 + 6 * row / 11)
        cv2.line(gray, (0, round(y + 128 * np.tan(lean))), (255, round(y - 128 * np.tan(lean))), 205, 1)
    for column, x in enumerate(range(10, 256, 16) if squared else ()):
        lean = np.radians(-3 + 6 * column / 15)
        cv2.line(gray, (round(x - 96 * np.tan(lean)), 0), (round(x + 96 * np.tan(lean)), 191), 205, 1)
    return gray


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "lined"])
def test_converging_rulings_are_each_erased_along_their_own_slant(squared: bool) -> None:
    # The page's frame has one tilt: a ruling leaning 3° from it drifts ~7 px across the image, through rows that
    # it covers only in part, and its stretches outside the frame's bands stayed as dashes that read as strokes
    # (2,281 and 4,132 pixels 15+ levels dark here before)
    gray = _converging_page(squared)
    digit = np.zeros(gray.shape, np.uint8)
    cv2.ellipse(digit, (128, 96), (20, 32), 0, 0, 360, 1, 3)  # a 0 crossing the rulings
    gray[digit > 0] = 60
    away = cv2.dilate(digit, np.ones((15, 15), np.uint8)) == 0
    away[:3], away[-3:], away[:, :3], away[:, -3:] = False, False, False, False
    assert np.count_nonzero(gray[away] < 220) > 1500  # the rulings are there...
    erased = erase_rulings(gray)
    assert np.count_nonzero(erased[away] < 220) == 0  # ...and gone along their whole length
    assert erased[digit > 0].max() <= 60 + 30  # the digit's strokes are no lighter than the print is deep


def test_long_straight_stroke_on_ruled_paper_is_not_taken_for_a_drifting_ruling() -> None:
    # A 4's stem or a 1, 2° off the page's frame and two thirds of the image high: a drifting ruling would leave no
    # more than a quarter of its length to strokes crossing it, and it stays (lifted away as a column at 0.6)
    gray = _converging_page(squared=False)
    stem = np.zeros(gray.shape, np.uint8)
    cv2.line(stem, (120, 30), (120 + round(128 * np.tan(np.radians(2))), 158), 1, 2)
    gray[stem > 0] = 150
    assert np.median(erase_rulings(gray)[stem > 0]) <= 150 + 5


def test_texture_offers_at_most_peaks_candidate_lines_the_most_voted_first() -> None:
    # a page of noise is thin dark line in every direction: hundreds of Hough lines, each of which the drifting-
    # rulings check compared with every line taken before it (~20 ms a noise image; the frame's search ~3 ms)
    from app.preprocess import rulings

    noise = (np.random.default_rng(0).random((192, 256)) < 0.4).astype(np.uint8)
    votes = int(rulings.CANDIDATE * 256)
    every = cv2.HoughLinesWithAccumulator(
        noise, 1, np.pi / 360, votes, min_theta=np.pi / 2 - rulings.LEAN, max_theta=np.pi / 2 + rulings.LEAN
    ).reshape(-1, 3)
    assert len(every) > 5 * rulings.PEAKS
    candidates = rulings._hough(noise, np.pi / 2, votes)
    assert len(candidates) == rulings.PEAKS
    count = {(float(rho), float(theta)): int(v) for rho, theta, v in every}
    kept = [count[line] for line in candidates]
    assert kept == sorted(kept, reverse=True)  # the most voted first...
    assert min(kept) >= sorted(every[:, 2], reverse=True)[rulings.PEAKS - 1]  # ...and none left out that beats them


def _with_margin(page: Image.Image, x: float, lean: float) -> Image.Image:
    """`page` with a lined page's red margin line, 3 px wide, top to bottom near `x`, leaning `lean` degrees."""
    drift = np.tan(np.radians(lean)) * page.height
    ImageDraw.Draw(page).line([(x, -5), (x + drift, page.height + 5)], fill=(235, 115, 120), width=3)
    return page


@pytest.mark.parametrize(("x", "lean"), [(100, 5.0), (130, 0.0), (130, 5.0)])
def test_a_lined_pages_margin_beside_the_digit_is_not_read_as_a_stroke(
    x: int, lean: float, reference: np.ndarray
) -> None:
    page = _with_margin(on_paper(glyph(140), size=(300, 400), at=(120, 150)), x, lean)  # no rulings to find
    # kept, the margin joins the 7 as a long stroke 30-60 px beside it: similarity 0.35-0.43 here
    assert similarity(to_mnist_pixels(encode(page, "JPEG", quality=90)), reference) > 0.9


def _ink(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, np.float32)


def test_a_margin_line_is_erased_from_the_ink_and_the_digit_beside_it_stays() -> None:
    ink = _ink((192, 256))
    cv2.circle(ink, (170, 100), 40, 1.0, 4)  # the digit: a 0
    cv2.line(ink, (40, 5), (52, 186), 0.8, 2)  # the margin, leaning, over 95 % of the rows
    erased = erase_margins(ink)
    assert not erased[:, 30:65].any()  # the line is gone...
    np.testing.assert_array_equal(erased[:, 100:], ink[:, 100:])  # ...the 0 untouched


def test_straight_strokes_of_a_digit_are_not_margins() -> None:
    one = _ink((192, 256))
    cv2.line(one, (128, 0), (124, 191), 1.0, 3)  # a "1" from edge to edge, all the ink there is
    assert erase_margins(one) is one
    nine = _ink((192, 256))
    cv2.line(nine, (150, 40), (146, 170), 1.0, 3)  # a 9's stem over 68 % of the rows, its loop beside it
    cv2.circle(nine, (120, 70), 28, 1.0, 3)
    assert erase_margins(nine) is nine
    wide = _ink((192, 256))
    cv2.line(wide, (40, 0), (40, 191), 1.0, 12)  # a marker stroke, far wider than a printed line
    cv2.circle(wide, (170, 100), 40, 1.0, 4)
    assert erase_margins(wide) is wide
