"""app.preprocess.page: a page photographed at an angle on a desk is found and read upright, the desk's ink cleared;
shadows, bare paper and strokes running off the image are not mistaken for a page's edges."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.preprocess import to_mnist_pixels
from app.preprocess.page import Page, clear_desk, find_page, turn_upright
from tests.preprocess.images import encode, glyph, on_paper, similarity

DESK = (70, 55, 40)  # a dark wooden desk top


def on_desk(page: Image.Image, degrees: float, size: tuple[int, int] = (460, 500)) -> Image.Image:
    """`page` turned clockwise by `degrees` (as the image shows it) in the middle of a desk, `size` px: the page
    fills most of the shot, the desk shows past its corners."""
    turned = page.convert("RGBA").rotate(-degrees, resample=Image.Resampling.BICUBIC, expand=True)
    desk = Image.new("RGB", size, DESK)
    desk.paste(turned, ((size[0] - turned.width) // 2, (size[1] - turned.height) // 2), turned)
    return desk


def working_gray(image: Image.Image) -> np.ndarray:
    """The darkest channel at the working copy's scale (longer side 256), as the pipeline reads a photo."""
    image = image.copy()
    image.thumbnail((256, 256), Image.Resampling.BOX)
    return np.asarray(image).min(axis=2)


def written_page() -> Image.Image:
    """The glyph's 7 written upright on a 360×440 sheet."""
    return on_paper(glyph(200), size=(360, 440), at=(80, 120))


@pytest.mark.parametrize("degrees", [-18.0, -7.0, 12.0, 25.0])
def test_a_page_on_a_desk_gives_its_tilt(degrees: float) -> None:
    page = find_page(working_gray(on_desk(written_page(), degrees)))
    assert page is not None and page.tilt == pytest.approx(degrees, abs=1.5)


@pytest.mark.parametrize("degrees", [0.0, 40.0])  # nothing to turn; rows or columns? not clear
def test_a_page_square_to_the_camera_or_past_the_limit_is_found_but_not_turned(degrees: float) -> None:
    page = find_page(working_gray(on_desk(written_page(), degrees)))
    assert page is not None and page.tilt is None


def test_paper_without_a_desk_is_no_page_even_with_a_hard_shadow() -> None:
    page = written_page().resize((460, 500))
    assert find_page(working_gray(page)) is None
    # a phone's shadow falling from the top edge, as dark as a desk: its straight edges are not the page's
    shade = Image.new("L", page.size, 0)
    ImageDraw.Draw(shade).polygon([(150, 0), (400, 0), (430, 260), (120, 300)], fill=255)
    shaded = Image.composite(Image.eval(page, lambda value: value * 0.3), page, shade)
    assert working_gray(shaded).min() < 0.5 * np.percentile(working_gray(shaded), 90)  # as dark as a desk
    assert find_page(working_gray(shaded)) is None


@pytest.mark.parametrize("width", [10, 16, 40])  # 10: a slit in the paper (DENT); wider: paper both sides (ELSEWHERE)
def test_a_thick_stroke_running_off_the_image_is_no_desk(width: int) -> None:
    drawing = Image.new("RGB", (400, 400), (240, 240, 235))
    ImageDraw.Draw(drawing).line([(150, 0), (250, 400)], fill=(20, 20, 20), width=width)  # a "1", edge to edge
    assert find_page(working_gray(drawing)) is None
    read = to_mnist_pixels(encode(drawing, "PNG"))  # the stroke is the digit, not a desk to clear
    assert np.count_nonzero(read > 128) > 25  # a stroke 20 px long, 2-3 px wide (cleared, it raised "no digit")


def test_turn_upright_turns_ink_back_by_the_tilt() -> None:
    bar = np.zeros((80, 120), np.float32)
    bar[38:42, 10:110] = 1.0
    tilted = np.asarray(Image.fromarray(bar).rotate(-15, resample=Image.Resampling.BILINEAR, expand=True))
    upright = turn_upright(tilted, Page(15.0, np.ones_like(tilted)))

    def direction(ink: np.ndarray) -> float:  # the ink's main axis, degrees clockwise from the x axis
        ys, xs = np.nonzero(ink > 0.5)
        xs, ys = xs - xs.mean(), ys - ys.mean()
        return float(np.degrees(0.5 * np.arctan2(2 * (xs * ys).mean(), (xs**2).mean() - (ys**2).mean())))

    assert direction(tilted) == pytest.approx(15.0, abs=1.0)
    assert direction(upright) == pytest.approx(0.0, abs=1.0)
    assert upright.sum() == pytest.approx(tilted.sum(), rel=0.02)  # none of the ink falls off the canvas
    assert turn_upright(tilted, None) is tilted
    assert turn_upright(tilted, Page(None, np.ones_like(tilted))) is tilted


def test_clear_desk_keeps_the_page_and_clears_the_desk_and_the_edge() -> None:
    gray = np.full((192, 256), 60, np.uint8)  # the desk
    gray[20:172, 30:226] = 230  # the page, square to the camera...
    page = find_page(gray)
    assert page is not None and page.tilt is None  # ...so found, but not turned
    cleared = clear_desk(np.ones(gray.shape, np.float32), page)
    assert cleared[:20].max() == 0 and cleared[:, :30].max() == 0  # the desk
    assert cleared[20:22].max() == 0 and cleared[:, 224:226].max() == 0  # the page's edge, EDGE_MARGIN px
    assert cleared[22:170, 32:224].min() == 1  # the rest of the page
    ink = np.ones(gray.shape, np.float32)
    assert clear_desk(ink, None) is ink


def test_a_digit_on_a_page_shot_at_an_angle_is_read_upright(reference: np.ndarray) -> None:
    photo = on_desk(written_page(), 20.0)
    read = to_mnist_pixels(encode(photo, "JPEG", quality=90))
    # the same shot cropped to the page's inside: no desk, so no tilt to undo, and the 7 stays turned
    inside = photo.crop((110, 130, 350, 370))
    turned = to_mnist_pixels(encode(inside, "JPEG", quality=90))
    assert similarity(turned, reference, shift=1) < 0.75
    assert similarity(read, reference, shift=1) > 0.85
