"""app.preprocess.digit: MNIST's geometry (20×20 box, centre of mass) and the MNIST-format pass-through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.preprocess import to_mnist_pixels
from app.preprocess.digit import fit_box
from tests.preprocess.images import encode, error_of, glyph, on_paper, silhouette, similarity


def test_reference_is_the_drawn_seven_fitted_in_20px_and_centred_by_mass(reference: np.ndarray) -> None:
    """The other tests compare encodings against `reference`: here it is checked against the drawing itself."""
    assert reference.shape == (28, 28) and reference.dtype == np.uint8
    assert reference.max() == 255 and reference[0].max() == 0 and reference[:, 0].max() == 0
    rows, cols = np.nonzero(reference)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20
    ys, xs = np.mgrid[0:28, 0:28]
    mass = reference.astype(np.float64)
    assert ((mass * ys).sum() / mass.sum(), (mass * xs).sum() / mass.sum()) == pytest.approx((14.0, 14.0), abs=0.75)
    drawn = glyph()  # the same 7, scaled by Pillow alone: the shapes agree, and not with a mirrored 7
    shape = silhouette(reference).ravel()
    assert np.corrcoef(shape, silhouette(drawn).ravel())[0, 1] > 0.9
    mirrored = drawn.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert np.corrcoef(shape, silhouette(mirrored).ravel())[0, 1] < 0.7


def test_digit_off_centre_on_big_sheet_is_centred_by_mass() -> None:
    sheet = on_paper(glyph(500), size=(1600, 1200), at=(1000, 600))
    pixels = to_mnist_pixels(encode(sheet, "JPEG", quality=85)).astype(np.float64)
    ys, xs = np.mgrid[0:28, 0:28]
    centre = ((pixels * ys).sum() / pixels.sum(), (pixels * xs).sum() / pixels.sum())
    assert centre == pytest.approx((14.0, 14.0), abs=0.75)
    rows, cols = np.nonzero(pixels > 25)
    assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 20


def test_mnist_digit_keeps_its_pixels(mnist_root: Path) -> None:
    from training.data import load_split

    digits = load_split(mnist_root, train=False).images[:200].numpy()
    # centring by mass rounds to whole pixels, so a digit may move by one
    scores = [similarity(to_mnist_pixels(encode(Image.fromarray(d), "PNG")), d, shift=1) for d in digits]
    assert min(scores) > 0.97 and float(np.mean(scores)) > 0.99


def test_mnist_format_uploads_pass_through_unchanged(mnist_root: Path) -> None:
    from training.data import load_split

    digits = load_split(mnist_root, train=False).images[:300].numpy()
    framed = [d for d in digits if not np.concatenate([d[0], d[-1], d[:, 0], d[:, -1]]).any()]
    assert len(framed) > 280
    for digit in framed:
        assert np.array_equal(to_mnist_pixels(encode(Image.fromarray(digit), "PNG")), digit)


def test_28px_dark_on_light_digit_still_takes_the_full_pipeline(mnist_root: Path) -> None:
    from training.data import load_split

    digit = load_split(mnist_root, train=False).images[0].numpy()
    out = to_mnist_pixels(encode(Image.fromarray(255 - digit), "PNG"))  # black on white: no pass-through
    assert out[0].max() == 0 and out.max() > 200  # inverted to white on black, centred
    assert similarity(out, digit, shift=2) > 0.7


def test_blank_28px_black_image_is_no_digit() -> None:
    assert error_of(encode(Image.new("L", (28, 28), 0), "PNG")).status_code == 400


@pytest.mark.parametrize(
    "shape",
    [(64, 48), (138, 56), (256, 191), (1, 200), (200, 1), (20, 13), (20, 20), (3, 5), (7, 1), (1, 1), (41, 40)],
)
def test_fit_box_resizes_as_pillow_s_antialiased_bilinear(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    patch = rng.random(shape, dtype=np.float32) * (rng.random(shape) < 0.6)  # ink and bare paper, as crops are
    patch[0, 0] = 1.0
    height, width = shape
    scale = 20 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    expected = np.asarray(Image.fromarray(patch, mode="F").resize(size, Image.Resampling.BILINEAR))
    fitted = fit_box(patch)
    assert fitted.dtype == np.float32 and fitted.shape == expected.shape and max(fitted.shape) == 20
    assert np.abs(fitted - np.clip(expected, 0.0, 1.0)).max() <= 1e-6
