"""app.preprocess.morphology: OpenCV's filters behave as the clipped-window filters the steps were written for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from app.preprocess.morphology import (
    area_and_outline,
    grow,
    least_side_maximum,
    max_filter,
    min_filter,
    reconstruct_by_erosion,
    reconstruct_side_by_side,
    ridge_width,
)
from app.preprocess.quantiles import median


def clipped(values: np.ndarray, window: int, reduce: str) -> np.ndarray:
    """Brute force: the max or min over each window×window neighbourhood, pixels outside the image ignored."""
    fill = -np.inf if reduce == "max" else np.inf
    padded = np.pad(values.astype(np.float64), window // 2, constant_values=fill)
    windows = sliding_window_view(padded, (window, window))
    return windows.max(axis=(2, 3)) if reduce == "max" else windows.min(axis=(2, 3))


@pytest.mark.parametrize("window", [1, 3, 7, 19])
def test_max_and_min_filters_are_clipped_at_the_edges(window: int) -> None:
    values = np.random.default_rng(window).random((23, 31), dtype=np.float32)
    assert np.array_equal(max_filter(values, window), clipped(values, window, "max"))
    assert np.array_equal(min_filter(values, window), clipped(values, window, "min"))


def test_disk_dilation_widens_a_diagonal_line_as_much_as_a_straight_one() -> None:
    straight, diagonal = np.zeros((41, 41), np.float32), np.zeros((41, 41), np.float32)
    straight[20, 5:36] = 1.0
    diagonal[np.arange(5, 36), np.arange(5, 36)] = 1.0
    grown = [max_filter(line, 7, disk=True) for line in (straight, diagonal)]
    across = [int(grown[0][:, 20].sum()), int(np.fliplr(grown[1]).diagonal().sum())]  # perpendicular cuts
    assert across[0] == 7 and abs(across[1] * np.sqrt(2) - 7) <= 1.5  # a square would make it 7√2 ≈ 9.9


def test_grow_is_a_3x3_dilation_repeated() -> None:
    cells = np.zeros((9, 9), bool)
    cells[4, 4] = True
    assert np.count_nonzero(grow(cells)) == 9 and np.count_nonzero(grow(cells, 2)) == 25
    assert grow(cells).dtype == bool


@pytest.mark.parametrize("shape", [(4, 48, 64), (2, 7, 1), (1, 1, 9), (3, 5, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_least_side_maximum_is_the_least_of_the_running_maxima_from_the_four_sides(
    shape: tuple[int, int, int], dtype: type
) -> None:
    stack = (np.random.default_rng(sum(shape)).random(shape) * 250).astype(dtype)
    from_sides = [
        np.maximum.accumulate(stack, axis=1),  # from the top
        np.flip(np.maximum.accumulate(np.flip(stack, 1), axis=1), 1),  # from the bottom
        np.maximum.accumulate(stack, axis=2),  # from the left
        np.flip(np.maximum.accumulate(np.flip(stack, 2), axis=2), 2),  # from the right
    ]
    least = least_side_maximum(stack)
    assert least.shape == stack.shape and least.dtype == stack.dtype
    assert np.array_equal(least, np.minimum.reduce(from_sides))  # no window reaches into the next image either


def test_reconstruction_fills_enclosed_basins_and_leaves_those_open_to_the_border() -> None:
    floor = np.full((9, 12), 10.0, np.float32)
    floor[3:6, 2:5] = 2.0  # a basin in the middle: walled in at 10
    floor[3:6, 8:12] = 2.0  # a channel running off the right edge
    marker = np.full_like(floor, 10.0)
    marker[:, -1] = floor[:, -1]  # the border seeds its own values
    filled = reconstruct_by_erosion(marker, floor)
    assert np.all(filled[3:6, 2:5] == 10.0)  # filled up to its rim
    assert np.all(filled[3:6, 8:12] == 2.0)  # drains to the edge


def test_images_reconstructed_side_by_side_are_each_what_they_are_alone() -> None:
    rng = np.random.default_rng(3)
    floors = [rng.random((16, width), dtype=np.float32) * 100 for width in (20, 13)]
    markers = [np.full_like(floor, 100.0) for floor in floors]
    markers[0][:, -1] = floors[0][:, -1]  # the first drains through its right edge, which faces the second...
    alone = [reconstruct_by_erosion(marker, floor) for marker, floor in zip(markers, floors, strict=True)]
    together = reconstruct_side_by_side(markers, floors)
    assert [image.shape for image in together] == [(16, 20), (16, 13)]
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    assert alone[0].min() < 100.0 and np.all(alone[1] == 100.0)  # ...which has nowhere to drain: nothing leaks over


def test_area_and_outline_count_pixels_and_the_sides_between_them_and_the_rest() -> None:
    mask = np.zeros((12, 20), bool)
    mask[2:5, 3:8] = True  # a 3×5 block: 15 pixels, 2 × (3 + 5) sides
    assert area_and_outline(mask) == (15, 16)
    mask[:, 19] = True  # a 1-pixel line down the right edge: 12 more pixels, the edge's sides count too
    assert area_and_outline(mask) == (27, 16 + 2 * 12 + 2)
    line = np.zeros((40, 40), bool)
    line[20, 5:35] = True  # 2 × area / outline: about the line's width of 1
    area, outline = area_and_outline(line)
    assert 0.9 < 2 * area / outline <= 1.0
    assert area_and_outline(np.ones((1, 4), bool)) == (4, 10)  # one row: its top and bottom sides both count
    assert area_and_outline(np.ones((3, 1), bool)) == (3, 8)


def test_ridge_width_reads_a_strokes_width_and_a_solid_patch_beside_it_barely_moves_it() -> None:
    line, bar = np.zeros((120, 160), bool), np.zeros((120, 160), bool)
    line[20:100, 30:32] = True  # 2 pixels wide
    bar[20:100, 30:38] = True  # 8 pixels wide
    assert ridge_width(line) == pytest.approx(2.0, abs=0.3) and ridge_width(bar) == pytest.approx(8.0, abs=1.0)
    assert ridge_width(np.zeros((10, 10), bool)) == 0.0
    with_patch = line.copy()
    with_patch[40:80, 90:130] = True  # a 40×40 patch beside the line: a shadow's tip
    area, outline = area_and_outline(with_patch)
    assert 2 * area / outline > 6  # the area/outline width of the whole mask is the patch's
    assert ridge_width(with_patch) == pytest.approx(2.0, abs=0.3)


def test_ridge_width_with_a_crowd_leaves_specks_out() -> None:
    mask = np.zeros((200, 200), bool)
    mask[20:180, 20:30] = True  # a bar 10 pixels wide
    mask[3::6, 40::6] = True  # 33 × 27 single-pixel specks, 6 apart: more ridge pixels than the bar's
    assert ridge_width(mask) == pytest.approx(2.0, abs=0.3)  # the specks' width
    assert ridge_width(mask, crowd=5) == pytest.approx(10.0, abs=1.0)  # the bar's


def _whole_image_ridge_width(mask: np.ndarray, crowd: int) -> float:
    """`ridge_width` as first written, on the whole image: the reference its crop to the mask's box must match."""
    cells = mask.view(np.uint8)
    distance = cv2.distanceTransform(cells, cv2.DIST_L2, cv2.DIST_MASK_5)
    ridge = (distance > 0) & (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)))
    if crowd > 0:
        ridge &= cv2.boxFilter(cells, -1, (5, 5), normalize=False, borderType=cv2.BORDER_CONSTANT) >= crowd
    widths = distance[ridge]
    return 2.0 * median(widths) if widths.size else 0.0  # the package's median, tested on its own


def test_ridge_width_on_the_masks_box_is_what_the_whole_image_gives() -> None:
    rng = np.random.default_rng(3)
    for _ in range(400):
        height, width = rng.integers(1, 50, 2)
        mask = np.zeros((height + 40, width + 40), bool)  # room around: the box is a part of the image...
        top, left = rng.integers(0, 41, 2)  # ...anywhere in it, its edges included
        mask[top : top + height, left : left + width] = rng.random((height, width)) < rng.choice([0.05, 0.3, 0.7, 0.97])
        if rng.random() < 0.5:  # strokes rather than specks
            mask = cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
        for crowd in (0, 5):
            assert ridge_width(mask, crowd) == _whole_image_ridge_width(mask, crowd)
