"""app.preprocess.background: uneven light and shadows divided out, strokes kept at their own strength."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from app.preprocess import to_mnist_pixels
from app.preprocess.background import divide_background, fill_basins, lift_patches, paper_plane
from app.preprocess.morphology import max_filter, min_filter
from app.preprocess.strokes import threshold_noise
from tests.preprocess.images import encode, glyph, on_paper, pen_line, similarity


def test_uneven_light_and_shadow_are_divided_out(reference: np.ndarray) -> None:
    photo = np.asarray(on_paper(glyph(200), size=(600, 450), at=(300, 200)), dtype=np.float32)
    light = np.linspace(0.35, 1.0, 600, dtype=np.float32)[None, :, None]  # dark on the left, bright on the right
    light = np.repeat(light, 450, axis=0)
    light[:, 300:] *= 0.6  # a hard shadow edge, running through the digit
    image = Image.fromarray(np.clip(photo * light, 0, 255).astype(np.uint8))
    assert similarity(to_mnist_pixels(encode(image, "JPEG", quality=75)), reference) > 0.9


def test_a_pen_line_running_into_a_hard_shadow_keeps_its_strength_and_the_shadow_edge_is_not_ink() -> None:
    gray = np.full((256, 256), 220, np.uint8)
    gray[128:, 96:] = 140  # a hard-edged shadow over the lower right, reaching two borders
    gray[40:216, 104:106] = 80  # a 2-pixel pen line running from the light into the shadow
    ink = divide_background(gray)
    # 1 − line / paper: 1 − 80/220 ≈ 0.64 in the light, 1 − 80/140 ≈ 0.43 in the shadow. Averaged into the small
    # copy, the line was paler than the shadow it touches, passed for part of it, and was erased in the light (0.0)
    assert ink[40:128, 104:106].min() > 0.6 and ink[128:216, 104:106].min() > 0.4
    ink[40:216, 104:106] = 0.0
    assert ink.max() < 0.01  # the paper estimate follows the shadow's edge: no rim of "ink" along it


def test_a_faint_line_drawn_down_the_light_keeps_its_strength_all_along() -> None:
    light = np.linspace(245, 135, 256, dtype=np.float32)[None, :].repeat(192, 0)  # lit from the left
    line = cv2.line(np.zeros((192, 256), np.uint8), (30, 150), (225, 40), 1, thickness=1).astype(bool)
    gray = light * np.where(line, np.float32(0.85), np.float32(1.0))  # a 1-pixel pencil line, 15 % darker
    ink = divide_background(gray.round().astype(np.uint8))
    # 1 − line / paper = 0.15 all along. Each stretch of the line is a path, no lighter than itself, to the dimmer
    # stretches and on to the dim border, so filling the small copies did not raise it and it counted as barely
    # enclosed: 0.016–0.146 along its length, 0.088 at the median. Judged on copies levelled by the paper's
    # plane, it is a basin like any stroke on even paper
    assert ink[line].min() > 0.13
    assert np.where(line, 0.0, ink).max() < 0.03  # the paper beside it is still paper


def test_a_faint_line_leaving_a_hard_shadow_for_the_light_keeps_its_strength_there() -> None:
    gray = np.full((192, 256), 220, np.float32)
    gray[96:, 120:] = 140  # a hard-edged shadow over the lower right, reaching two borders, darker than the line
    line = cv2.line(np.zeros((192, 256), np.uint8), (60, 30), (200, 170), 1, thickness=1).astype(bool)
    ink = divide_background((gray * np.where(line, np.float32(0.85), np.float32(1.0))).round().astype(np.uint8))
    lit, shaded = line & (gray == 220), line & (gray == 140)
    # 1 − line / paper = 0.15 on both sides. In the light the line (187) is paler than the shadow it runs into (119
    # there), a path no lighter than itself to the border: on every copy but the flattened one (THIN_WINDOW) it
    # was no basin, and all of its lit part was erased (0.0), up to the last pixels before the shadow
    assert ink[lit].min() > 0.13 and ink[shaded].min() > 0.13
    assert np.where(cv2.dilate(line.view(np.uint8), np.ones((3, 3), np.uint8)) > 0, 0.0, ink).max() < 0.01


def test_a_shadow_s_wedge_is_not_ink_beyond_its_thinnest_tip() -> None:
    gray = np.full((192, 256), 220, np.uint8)
    wedge = cv2.fillPoly(np.zeros((192, 256), np.uint8), [np.array([[80, 191], [180, 191], [130, 40]])], 1) > 0
    gray[wedge] = 150  # a shadow from the bottom edge, 100 px wide there, narrowing to a tip 150 px up
    cv2.line(gray, (20, 30), (60, 150), 150, 1)  # and a faint line beside it
    ink = divide_background(gray)
    # The wide closing fills the wedge where it is narrower than its window (~75 px), so on the flattened copy that
    # part looks as dark as a stroke: unrestricted, that copy made ink of it (0.32 near the bottom edge); only
    # darkness a 3-pixel closing of that copy lifts counts, which leaves the tip, ~20 px where it is under ~12 wide
    assert ink[60:][wedge[60:]].max() < 0.01


def test_the_paper_plane_follows_the_light_not_the_desk_a_shadow_or_the_strokes() -> None:
    rows, cols = np.mgrid[0:48, 0:64].astype(np.float32)
    light = 110.0 + 2.0 * cols + 0.5 * rows  # 110 at the top left to 259.5 at the bottom right
    values = light.copy()
    values[:, :10] = 45.0  # the desk past the page's left edge
    values[30:, 44:] *= 0.6  # a hard-edged shadow in the lower right corner
    values[8:24, 30:32] = 60.0  # a stroke
    plane = paper_plane(values, min_filter(max_filter(values, 19), 19))  # the small copy's closing, as served
    page = np.ones_like(values, bool)
    page[:, :10] = page[30:, 44:] = False
    assert np.abs(plane - light)[page].max() < 3.0


def test_the_paper_plane_is_a_constant_where_no_plane_can_be_fitted() -> None:
    row = np.linspace(100, 200, 64, dtype=np.float32)[None, :]  # one row: no spread across rows
    assert np.allclose(paper_plane(row, row), row.mean())
    tiny = np.full((4, 4), 200, np.float32)  # 16 pixels: too few
    assert np.allclose(paper_plane(tiny, tiny), 200.0)
    column_lit = np.full((48, 8), 20.0, np.float32)
    column_lit[:, 3] = 220.0  # all the bright pixels in one column
    plane = paper_plane(column_lit, column_lit)
    assert np.isfinite(plane).all() and np.allclose(plane, column_lit.mean())


def test_the_grain_of_a_dark_desk_beside_the_page_is_not_ink() -> None:
    rng = np.random.default_rng(0)
    gray = np.full((192, 256), 220, np.uint8)
    grain = np.where(rng.random((48, 6)) < 0.3, 58, 70).astype(np.uint8)  # dips 12 levels deep, in 4×4 patches
    gray[:, :24] = grain.repeat(4, axis=0).repeat(4, axis=1)  # the desk past the page's left edge
    gray[40:150, 130:132] = 90  # a 2-pixel pen line on the page
    ink = threshold_noise(divide_background(gray))
    assert ink[40:150, 130:132].min() > 0.5
    # The desk strip is narrower than the paper estimate's window, so there the paper reads as bright as the page
    # and the desk as dark as ink; only its enclosure keeps it out. Its filled dips rose 12 levels: counted in
    # full (as before ENCLOSED_SHALLOW), they came out at 0.35, above 0.4 of the line's 0.59, and 2,556 of the desk's
    # pixels were kept; now they come out at 0.17
    assert np.count_nonzero(ink[:, :24]) == 0


def _faint_pencil_page(darkening: float) -> bytes:
    """A 1-pixel pencil 7, 24 % darker than its paper, on an overexposed page (white clipped at 255, with a little
    grain) that darkens towards the right edge by `darkening` of its light."""
    height, width = 300, 400
    light = 262.0 * (1 - darkening * np.clip((np.arange(width) - 100) / 300, 0, 1))
    coverage = np.zeros((height, width), np.float32)
    coverage[40:140, 30:130] = np.asarray(pen_line(100), np.float32) / 255
    gray = light[None, :] * (1 - 0.24 * coverage) + np.random.default_rng(0).normal(0, 2.0, (height, width))
    return encode(Image.fromarray(np.clip(gray, 0, 255).round().astype(np.uint8)), "PNG")


def test_paper_shaded_by_less_than_a_faint_line_s_darkness_is_not_read_as_the_digit(reference: np.ndarray) -> None:
    # The right edge is 7.5 % darker than white: under FLAT_PAPER, so the page once passed for even paper, and
    # against a single brightness the broad gradient read as ink as strong as the faint line's and was kept in
    # its place (similarity 0.55). A quarter of the ink's own darkness (SHADE_OF_INK) makes it shaded paper.
    even = to_mnist_pixels(_faint_pencil_page(0.0))
    assert similarity(even, reference) > 0.9  # on even paper, the faint 7 is read as the 7
    assert similarity(to_mnist_pixels(_faint_pencil_page(0.1)), even) > 0.95


def test_a_wide_felt_tip_stroke_on_shaded_paper_stays_solid() -> None:
    gray = np.linspace(150, 230, 256, dtype=np.float32)[None, :].repeat(256, 0)  # lit from the right
    gray[60:200, 100:150] *= 0.25  # a stroke 50 pixels wide: wider than the full-resolution closing's usual window
    ink = divide_background(gray.astype(np.uint8))
    assert ink[65:195, 105:145].min() > 0.7  # filled by the paper estimate of the small copy, not hollowed out


def test_a_patch_across_thin_strokes_is_lifted_and_the_strokes_keep_their_own_strength() -> None:
    ink = np.zeros((192, 256), np.float32)
    ring = cv2.circle(np.zeros_like(ink), (100, 96), 45, 0.15, thickness=1)  # a faint pencil 0, a 1-px line
    ink += ring
    ink[50:150, 130:240] += 0.2  # a shadow's tip left as ink, stronger than the strokes, over the 0's right side
    lifted = lift_patches(ink)
    on_ring = ring > 0
    inside = np.zeros_like(on_ring)
    inside[50:150, 130:240] = True
    np.testing.assert_allclose(lifted[on_ring], 0.15, atol=1e-6)  # in the light and across the patch alike
    assert lifted[inside & ~on_ring].max() < 1e-6  # the patch is gone, to its edges
    assert lifted[~inside & ~on_ring].max() == 0.0


def test_patches_stay_when_lifting_them_would_leave_no_stroke_as_strong_as_the_faintest() -> None:
    ink = np.zeros((192, 256), np.float32)
    ink += cv2.circle(np.zeros_like(ink), (100, 96), 45, 0.07, thickness=1)  # fainter than any digit's strokes
    ink[50:150, 130:240] += 0.1  # so the patch is what a digit could still be read from: not lifted to a blank
    assert np.array_equal(lift_patches(ink), ink)


def test_thick_strokes_are_not_lifted() -> None:
    ink = np.zeros((192, 256), np.float32)
    ink[30:160, 60:72] = 0.8  # a marker stroke 12 pixels wide: an opening a few strokes wide would hollow it
    ink[50:150, 130:240] = 0.3
    assert np.array_equal(lift_patches(ink), ink)


def test_basins_are_filled_and_so_are_strokes_running_off_a_side_but_not_shadows_along_it() -> None:
    paper = np.full((40, 48), 200.0, np.float32)
    enclosed = paper.copy()
    enclosed[14:20, 15:25] = 60.0  # a blob of ink inside the image
    off_sides = paper.copy()
    off_sides[18:21, :12] = 50.0  # a stroke running off the left side: a short dark run there (EDGE_RUN)
    off_sides[:10, 30:33] = 50.0  # another off the top
    off_sides[-1, :] = 80.0  # a shadow along the whole bottom: a long run, reaching the corners
    off_sides[-2, :] = 90.0
    stack = np.stack([enclosed, off_sides, paper])  # the inked sides belong to the second image only
    filled = fill_basins(stack, np.full_like(stack, 200.0))
    assert np.all(filled[0] == 200.0)  # the blob is a basin: filled up to the paper
    assert np.all(filled[1, :-2] == 200.0)  # each stroke is filled from the paper seeded where it leaves the image
    assert np.all(filled[1, -1] == 80.0) and np.all(filled[1, -2] == 90.0)  # the shadow drains: it stays
    assert np.all(filled[2] == 200.0)
    alone = fill_basins(off_sides[None], np.full((1, 40, 48), 200.0, np.float32))
    assert np.array_equal(alone[0], filled[1])  # each image of the stack is filled on its own
