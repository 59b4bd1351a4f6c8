"""The render generators: reproducible, split-disjoint, the advertised kinds of upload, thin pens thin, rulings
ruled, every non-digit category produced and no digit look-alike among the letters."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.morphology import remove_small_objects, skeletonize
from skimage.transform import hough_line, hough_line_peaks

from benchmarks.renders import (
    CATEGORIES,
    EXCLUDED,
    SPLITS,
    STYLES,
    digit_pool,
    digit_renders,
    glyphs,
    nondigit_renders,
    nondigits,
    pick_digits,
    render,
    render_nondigit,
)
from benchmarks.renders.centreline import centrelines
from benchmarks.renders.pen import Pen, draw
from benchmarks.renders.sources import mnist_format
from benchmarks.renders.splits import DigitPool, digit_rng, held_out_digits, nondigit_rng

KINDS = {  # style → (formats, modes, shortest and longest allowed longer side)
    "mnist": ({"PNG"}, {"L"}, 28, 28),
    "photo": ({"JPEG"}, {"RGB"}, 200, 1600),
    "canvas": ({"PNG"}, {"RGBA"}, 200, 640),
    "sheet": ({"PNG", "JPEG"}, {"L", "RGB"}, 800, 1600),
    "marker": ({"PNG", "JPEG"}, {"RGB"}, 250, 1200),
    "pen": ({"PNG", "JPEG"}, {"L", "RGB"}, 640, 1700),
    "pencil": ({"PNG", "JPEG"}, {"L", "RGB"}, 640, 1700),
    "grid": ({"PNG", "JPEG"}, {"L", "RGB"}, 640, 1700),
    "tilted": ({"JPEG"}, {"RGB"}, 160, 480),
    "chalk": ({"PNG", "JPEG"}, {"RGB"}, 280, 1600),
}


@pytest.fixture(scope="module")
def pools(mnist_root: Path) -> dict:
    return {split: digit_pool(split, mnist_root) for split in SPLITS}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def gray(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("L"), dtype=np.float32)


# ---------------------------------------------------------------- reproducibility and splits


def test_renders_depend_on_the_seed_and_default_to_the_test_split(pools: dict) -> None:
    digit = pools["test"].images[0]
    for style in ("tilted", "canvas"):
        assert render(style, digit, 11) == render(style, digit, 11, "test")
        assert render(style, digit, 11) != render(style, digit, 12)


def test_split_pools_are_disjoint_parts_of_mnist(pools: dict) -> None:
    train, threshold, test = pools["train"], pools["threshold"], pools["test"]
    assert (train.mnist_file, threshold.mnist_file, test.mnist_file) == ("train", "train", "test")
    assert not set(train.mnist_indices) & set(threshold.mnist_indices)
    assert len(train) + len(threshold) == 60_000 and len(test) == 10_000
    with pytest.raises(ValueError, match="pool"):
        next(digit_renders("pen", "train", 1, pool=test))
    with pytest.raises(ValueError, match="pool"):
        render_nondigit("numbers", 0, "train", pool=test)


def test_held_out_digits_are_the_pools_digits_a_model_never_trained_on() -> None:
    images = np.arange(6, dtype=np.uint8).repeat(784).reshape(6, 28, 28)  # each digit tells which it is
    pool = DigitPool("threshold", images, np.arange(6) % 10, np.arange(50_000, 50_006), "train")
    kept = held_out_digits(pool, np.array([3, 50_001, 50_004, 59_999]))  # some held-out images are elsewhere
    assert kept.mnist_indices.tolist() == [50_001, 50_004] and kept.split == "threshold"
    assert kept.images[:, 0, 0].tolist() == [1, 4] and kept.labels.tolist() == [1, 4]
    test_pool = DigitPool("test", images, np.arange(6), np.arange(6), "test")
    with pytest.raises(ValueError, match="test file"):
        held_out_digits(test_pool, np.array([1, 2]))  # test digits are indices into another file


def test_splits_never_share_random_streams() -> None:
    for seed in range(50):
        draws = [digit_rng(seed, split).integers(2**63) for split in SPLITS]
        draws += [nondigit_rng(seed, split, category).integers(2**63) for split in SPLITS for category in CATEGORIES]
        assert len(set(draws)) == len(draws)


def test_same_seed_in_another_split_gives_another_render(pools: dict) -> None:
    digit = pools["test"].images[5]
    assert len({render("tilted", digit, 4, split) for split in SPLITS}) == 3
    assert len({render_nondigit("shapes", 4, split).data for split in SPLITS}) == 3


def test_fonts_and_words_are_disjoint_across_splits() -> None:
    for table in (glyphs.LETTER_FONTS, glyphs.SYMBOL_FONTS, glyphs.WORDS):
        for a in SPLITS:
            for b in SPLITS:
                if a != b:
                    assert not set(table[a]) & set(table[b]), (a, b)


# ---------------------------------------------------------------- what comes out


@pytest.mark.parametrize("style", list(STYLES))
def test_style_outputs_the_advertised_kind_of_upload(style: str, pools: dict) -> None:
    formats, modes, low, high = KINDS[style]
    items = list(digit_renders(style, "test", 1, seed=1, pool=pools["test"]))
    again = render(style, pools["test"].images[items[0].pool_index], items[0].seed)
    assert again == items[0].data  # reproducible
    for item in items:
        image = decode(item.data)
        assert image.format in formats and image.mode in modes, (image.format, image.mode)
        assert low <= max(image.size) <= high, image.size
        if style == "tilted":  # JPEG quality 35–60: libjpeg's luminance DC quantiser is 13 (q60) … 23 (q35)
            assert 13 <= image.quantization[0][0] <= 23
        if style == "chalk":  # light on dark: the background (median) is dark, the strokes much lighter
            values = gray(item.data)
            assert np.median(values) < 90 and np.percentile(values, 99.5) > np.median(values) + 80


def stroke_width_and_height(data: bytes) -> tuple[float, int]:
    """Ink stroke width (ink area / centre-line length) and ink height of a dark-on-light render."""
    values = gray(data)
    ink = values / np.maximum(ndimage.grey_closing(values, size=(45, 45)), 1) < 0.7  # thin dark lines only
    labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
    sizes = ndimage.sum(ink, labels, range(1, count + 1))
    ink = np.isin(labels, 1 + np.nonzero(sizes >= 0.05 * sizes.max())[0])  # the digit, not JPEG specks
    rows = np.nonzero(ink.any(axis=1))[0]
    return ink.sum() / max(skeletonize(ink).sum(), 1), int(rows.max() - rows.min() + 1)


def test_pen_strokes_are_1_to_3_percent_of_the_digit_height(pools: dict) -> None:
    ratios = [
        width / height
        for width, height in map(
            stroke_width_and_height, (item.data for item in digit_renders("pen", "test", 6, seed=2, pool=pools["test"]))
        )
    ]
    assert 0.01 <= float(np.median(ratios)) <= 0.03, ratios
    assert all(0.008 <= ratio <= 0.035 for ratio in ratios), ratios  # the estimate itself is good to ~15 %


def long_straight_lines(data: bytes) -> int:
    """How many straight lines at least half the shorter side long the render's thin dark strokes hold."""
    values = gray(data)
    thin = values / np.maximum(ndimage.grey_closing(values, size=(9, 9)), 1) < 0.95
    thin = remove_small_objects(thin, max_size=50, connectivity=2)  # paper grain and JPEG noise
    h, w = (s // 2 * 2 for s in thin.shape)
    thin = thin[:h, :w].reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))  # half size, lines kept
    accumulator, angles, distances = hough_line(thin, theta=np.deg2rad(np.arange(-90, 90, 0.5)))
    peaks = hough_line_peaks(accumulator, angles, distances, threshold=0.5 * min(thin.shape), min_distance=3)
    return len(peaks[0])


def test_grid_renders_have_ruled_lines_and_pen_renders_do_not(pools: dict) -> None:
    grids = [long_straight_lines(r.data) for r in digit_renders("grid", "test", 3, seed=3, pool=pools["test"])]
    plain = [long_straight_lines(r.data) for r in digit_renders("pen", "test", 2, seed=3, pool=pools["test"])]
    assert all(count >= 3 for count in grids), grids
    assert all(count <= 1 for count in plain), plain  # the detector is not fooled by paper or a straight "1"


# ---------------------------------------------------------------- pieces


def test_centrelines_of_a_thick_bar_and_a_ring() -> None:
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:16] = 255
    (line,) = centrelines(bar)
    assert np.allclose(line[:, 0], 14, atol=0.6) and line[:, 1].max() - line[:, 1].min() > 15
    ys, xs = np.mgrid[0:28, 0:28]
    ring = (np.abs(np.hypot(ys - 14, xs - 14) - 8) < 1.6).astype(np.uint8) * 255
    (loop,) = centrelines(ring)
    assert np.allclose(loop[0], loop[-1]) and np.allclose(np.hypot(*(loop - 14.0).T), 8, atol=0.8)


def test_pen_draws_a_line_as_wide_as_the_pen() -> None:
    line = np.array([[10.0, 20.0], [110.0, 20.0]])
    for width in (1.0, 2.5, 6.0):
        coverage = draw([line], Pen(width=width), np.random.default_rng(0))
        column = coverage[:, coverage.shape[1] // 2]
        assert column.sum() == pytest.approx(width, abs=0.3)


def test_mnist_format_fits_20px_and_centres_the_mass() -> None:
    source = np.zeros((112, 300), np.uint8)
    source[30:80, 20:280] = 255
    out = mnist_format(source)
    rows, cols = np.nonzero(out > 0)
    assert out.shape == (28, 28) and cols.max() - cols.min() + 1 <= 20 and rows.max() - rows.min() + 1 <= 20
    centre = ndimage.center_of_mass(out.astype(np.float64))
    assert np.allclose(centre, (14, 14), atol=1.0)


# ---------------------------------------------------------------- non-digits


def test_every_nondigit_category_is_produced_and_decodes(pools: dict) -> None:
    items = list(nondigit_renders("threshold", 1, seed=5, pool=pools["threshold"]))
    assert [item.category for item in items] == list(CATEGORIES)
    for item in items:
        assert item.item and item.style in STYLES and item.split == "threshold"
        decode(item.data)
    numbers = render_nondigit("numbers", 1, "test", pool=pools["test"])
    assert 2 <= len(numbers.item) <= 4 and numbers.item.isdigit()


def test_letters_never_include_digit_look_alikes() -> None:
    assert {"O", "o", "I", "l"} <= set(EXCLUDED)
    assert not set(glyphs.LETTERS) & set(EXCLUDED) and not set(glyphs.SYMBOLS) & set(EXCLUDED)
    for category in ("letters", "symbols"):
        for seed in range(60):
            _, item, _ = nondigits.make_source(category, "test", nondigit_rng(seed, "test", category), None)
            assert item not in EXCLUDED


def test_export_writes_preprocessed_renders_with_labels_and_cues(mnist_root: Path, tmp_path: Path) -> None:
    from app.preprocess import inspect_upload
    from benchmarks.renders.export import DIGIT_STYLES, export
    from benchmarks.renders.nondigits import CATEGORIES

    out = tmp_path / "threshold.npz"
    export("threshold", out, per_style=1, per_category=1, seed=3, data_dir=str(mnist_root), workers=1)
    saved = np.load(out)
    kept, refused = len(saved["pixels"]), len(saved["refused_group"])
    assert kept + refused == len(DIGIT_STYLES) + len(CATEGORIES)
    assert saved["pixels"].shape == (kept, 28, 28) and saved["pixels"].dtype == np.uint8
    digits = saved["label"] >= 0
    assert set(saved["group"][digits]) <= set(DIGIT_STYLES) and set(saved["group"][~digits]) <= set(CATEGORIES)
    # the pen row is what the service's preprocessing makes of that digit's render, with the digit's label
    row = int(np.flatnonzero(saved["group"] == "pen")[0])
    pool = digit_pool("threshold", mnist_root)
    index = int(pick_digits(len(pool), 1, 3)[0])
    upload = render("pen", pool.images[index], int(saved["seed"][row]), "threshold")
    pixels, cues = inspect_upload(upload)
    np.testing.assert_array_equal(saved["pixels"][row], pixels)
    assert saved["label"][row] == pool.labels[index] and saved["cue_parts"][row] == cues.parts
    # every digit names its source in MNIST's training file (the threshold split draws 50,000–59,999)
    assert set(saved["mnist_index"][digits]) == {50_000 + index} and set(saved["mnist_index"][~digits]) <= {-1}


def test_export_refuses_the_test_split(tmp_path: Path) -> None:
    from benchmarks.renders.export import export

    with pytest.raises(ValueError, match="test split"):
        export("test", tmp_path / "x.npz", per_style=1, per_category=1, seed=0, data_dir="data", workers=1)


def test_export_renders_only_the_categories_asked_for(mnist_root: Path, tmp_path: Path) -> None:
    from benchmarks.renders.export import export

    out = tmp_path / "letters.npz"
    counts = export(
        "train", out, per_style=0, per_category=3, seed=1, data_dir=str(mnist_root), workers=1, categories=["letters"]
    )
    saved = np.load(out)
    assert set(saved["group"].tolist()) | set(saved["refused_group"].tolist()) == {"letters"}
    assert len(saved["group"]) + len(saved["refused_group"]) == 3 and counts.get("letters", 0) == len(saved["group"])
    assert (saved["label"] == -1).all()


def test_every_font_of_every_split_loads_and_draws_its_glyphs() -> None:
    """Source Serif Pro comes from its own package (not matplotlib's folder): each face must load and draw every
    letter and symbol its split asks of it, not a missing-glyph box."""
    for split in SPLITS:
        for name in glyphs.LETTER_FONTS[split]:
            assert all(glyphs.has_glyph(name, char) for char in glyphs.LETTERS), (split, name)
        for name in glyphs.SYMBOL_FONTS[split]:
            assert all(glyphs.has_glyph(name, char) for char in glyphs.SYMBOLS), (split, name)
    assert any(name.startswith("SourceSerifPro") for name in glyphs.LETTER_FONTS["train"])


def test_export_renders_only_the_styles_asked_for(mnist_root: Path, tmp_path: Path) -> None:
    from benchmarks.renders.export import export

    out = tmp_path / "hard.npz"
    counts = export(
        "train", out, per_style=2, per_category=0, seed=4, data_dir=str(mnist_root), workers=1, styles=["pen", "grid"]
    )
    saved = np.load(out)
    assert set(saved["group"].tolist()) | set(saved["refused_group"].tolist()) == {"pen", "grid"}
    assert len(saved["group"]) + len(saved["refused_group"]) == 4 and sum(counts.values()) == len(saved["group"])
    assert (saved["label"] >= 0).all()
