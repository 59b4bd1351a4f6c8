"""app.preprocess.inspect_upload: the 28×28 pixels plus cues of how much the upload looks like one digit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app.preprocess import Cues, inspect_upload, to_mnist_pixels
from app.preprocess.cues import MEASURED, count_holes, measure_pixels, significant_parts
from app.preprocess.strokes import THICK_STROKE, stroke_width
from tests.preprocess.images import encode, glyph, on_paper


def side_by_side(gap: int, size: int = 200) -> Image.Image:
    """Two copies of the glyph's ink next to each other, `gap` pixels apart (white on black)."""
    ink = glyph(size)
    ink = ink.crop(ink.getbbox())
    pair = Image.new("L", (2 * ink.width + gap, ink.height), 0)
    pair.paste(ink, (0, 0))
    pair.paste(ink, (ink.width + gap, 0))
    return pair


def rings(centres: list[tuple[int, int]], radius: int = 40) -> Image.Image:
    """Circles drawn with a pen (white on black, 300×300): one is a 0, two stacked are an 8."""
    image = Image.new("L", (300, 300), 0)
    draw = ImageDraw.Draw(image)
    for x, y in centres:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=255, width=12)
    return image.filter(ImageFilter.GaussianBlur(2))


def test_inspect_upload_returns_the_same_pixels_as_to_mnist_pixels() -> None:
    data = encode(on_paper(glyph(200)), "JPEG", quality=85)
    pixels, cues = inspect_upload(data)
    assert np.array_equal(pixels, to_mnist_pixels(data))
    assert isinstance(cues, Cues)
    with pytest.raises(AttributeError):
        cues.parts = 3  # type: ignore[misc]  # frozen: a measurement, not a setting


def test_one_digit_on_paper_is_one_part_with_nothing_dropped() -> None:
    cues = inspect_upload(encode(on_paper(glyph(200)), "PNG"))[1]
    assert cues.parts == 1 and cues.dropped_ink < 0.01
    assert not cues.inverted and not cues.mnist_format and not cues.touches_edge
    assert 0.5 < cues.aspect < 1.0  # the 7 is a little narrower than tall
    assert 1.5 < cues.stroke_width < 3.5  # drawn 2.5 px wide at the 28-px scale
    assert cues.holes == 0


def test_two_digits_side_by_side_are_two_parts_and_wide() -> None:
    close = inspect_upload(encode(on_paper(side_by_side(gap=20), size=(500, 300), at=(40, 40)), "PNG"))[1]
    one = inspect_upload(encode(on_paper(glyph(200)), "PNG"))[1]
    assert close.parts == 2 and one.parts == 1
    assert close.aspect > 1.5 * one.aspect  # both were kept as "the digit": twice as wide
    assert close.dropped_ink < 0.01


def test_a_far_away_second_digit_is_dropped_and_counted() -> None:
    far = inspect_upload(encode(on_paper(side_by_side(gap=400), size=(900, 300), at=(20, 40)), "PNG"))[1]
    assert far.parts == 2
    assert 0.3 < far.dropped_ink < 0.7  # one of two equal digits went


def test_light_on_dark_is_reported_inverted() -> None:
    board = on_paper(glyph(200), ink_rgb=(230, 230, 220), paper_rgb=(40, 60, 45))
    assert inspect_upload(encode(board, "PNG"))[1].inverted


def test_holes_count_loops() -> None:
    zero = inspect_upload(encode(rings([(150, 150)]), "PNG"))[1]
    eight = inspect_upload(encode(rings([(150, 100), (150, 175)]), "PNG"))[1]
    assert (zero.holes, eight.holes) == (1, 2)
    assert zero.parts == 1 and eight.parts == 1  # touching loops are one stroke


def test_thick_strokes_report_their_width_before_thinning() -> None:
    thin = inspect_upload(encode(on_paper(glyph(280), at=(60, 10)), "PNG"))[1]
    thick = inspect_upload(encode(on_paper(glyph(280).filter(ImageFilter.MaxFilter(21)), at=(60, 10)), "PNG"))[1]
    assert thick.stroke_width > 1.5 * thin.stroke_width and thick.stroke_width > THICK_STROKE  # it was thinned


def test_digit_cut_off_by_the_edge_touches_it() -> None:
    ink = glyph(200)
    cut = Image.new("L", (200, 200), 0)
    cut.paste(ink, (-60, 0))  # the left part of the 7's bar runs off the image
    assert inspect_upload(encode(on_paper(cut, size=(200, 200), at=(0, 0)), "PNG"))[1].touches_edge


def test_mnist_format_cues_are_measured_on_the_28px_digit(mnist_root: Path) -> None:
    from training.data import load_split

    test = load_split(mnist_root, train=False)
    digits = {int(label): image.numpy() for image, label in zip(test.images[:100], test.labels[:100], strict=True)}
    cues = {label: inspect_upload(encode(Image.fromarray(image), "PNG")) for label, image in digits.items()}
    for label, (pixels, cue) in cues.items():
        assert np.array_equal(pixels, digits[label])  # still a pass-through
        assert cue.mnist_format and cue.inverted and cue.dropped_ink == 0.0 and not cue.touches_edge
        assert cue.parts >= 1 and 0.0 < cue.coverage < 1.0 and cue.stroke_width > 0.5
    assert cues[1][1].aspect < cues[0][1].aspect  # a 1 is narrow, a 0 round
    assert cues[8][1].holes >= 1 and cues[1][1].holes == 0


def per_image_measurements(pixels: np.ndarray) -> list[float]:
    """The 28×28 measurements one image at a time, with the per-image functions (what `measure_pixels` batches)."""
    strong = pixels > 128
    rows, cols = np.nonzero(pixels)
    if len(rows) == 0:
        return [0, 0.0, 0.0, 0.0, float(count_holes(strong))]
    box = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = box.shape
    return [
        significant_parts(strong),
        width / height,
        np.count_nonzero(strong) / box.size,
        float(stroke_width(box / 255.0) or 0.0),
        float(count_holes(strong)),
    ]


def test_measure_pixels_equals_the_per_image_measurements() -> None:
    rng = np.random.default_rng(0)
    blobs = (rng.random((40, 28, 28)) < 0.3).astype(np.uint8) * 255  # many parts and holes
    images = [to_mnist_pixels(encode(on_paper(glyph(200)), "PNG")), np.zeros((28, 28), np.uint8), *blobs]
    rings_image = np.asarray(rings([(150, 100), (150, 190)]).resize((28, 28)))  # an 8: two holes
    images.append(rings_image)
    batch = np.stack(images)
    measured = measure_pixels(batch)
    assert measured.shape == (len(images), len(MEASURED))
    assert measured.tolist() == [per_image_measurements(image) for image in images]
    assert measured[-1, MEASURED.index("holes")] == 2
    assert measure_pixels(batch[:1]).tolist() == measured[:1].tolist()  # one image is measured as in a batch
