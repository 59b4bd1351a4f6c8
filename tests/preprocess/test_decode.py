"""app.preprocess.decode: only accepted formats are decoded, sizes are checked first, every failure is a clear
ImageError, odd but valid files and EXIF orientations are read right."""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app.preprocess import ImageError, to_mnist_pixels
from app.preprocess.decode import MAX_PIXELS, WORK_SIDE, decode_image, halved, shrink
from tests.preprocess.images import IPHONE_HEIC, encode, error_of, glyph, on_paper, similarity

INVERSE = {  # EXIF orientation → how a camera stored an upright picture under that tag
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(INVERSE))
def test_exif_orientation_is_applied(orientation: int, reference: np.ndarray) -> None:
    stored = on_paper(glyph(200), size=(320, 240), at=(100, 20)).transpose(INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = to_mnist_pixels(encode(stored, "JPEG", quality=90, exif=exif))
    untagged = to_mnist_pixels(encode(stored, "JPEG", quality=90))
    assert similarity(tagged, reference) > 0.9
    assert similarity(untagged, reference) < 0.8  # so the tag, not luck, made the difference


@pytest.mark.parametrize(
    ("size", "decoded"),
    [
        ((1024, 768), (256, 192)),  # 4:3 phone photo: a quarter
        ((1024, 683), (256, 171)),  # 3:2: a quarter too (the rule before gave half, then shrank it: ~25 % slower)
        ((683, 1024), (171, 256)),
        ((1000, 700), (500, 350)),  # a quarter would be under WORK_SIDE (256): half
        ((4032, 3024), (504, 378)),  # 12 Mpx: an eighth, the smallest scale there is
        ((2100, 6), (525, 2)),  # a long thin strip: a quarter, not an eighth, which would leave under one row
        ((200, 150), (200, 150)),  # small already: whole
    ],
)
def test_jpegs_are_decoded_at_the_smallest_scale_covering_the_working_side(
    size: tuple[int, int], decoded: tuple[int, int]
) -> None:
    assert decode_image(encode(Image.new("RGB", size, "white"), "JPEG"), MAX_PIXELS).size == decoded


def test_jpegs_carrying_more_pictures_are_decoded_as_jpegs() -> None:
    """An MPO (a JPEG with a second picture after it: an Ultra HDR photo's gain map, a camera's preview), which
    Pillow opens as format MPO, is decoded at a reduced scale like any JPEG and read as the same photo (it took ~6×
    longer before); libjpeg-turbo, which decodes it, stops at the first picture's end."""
    photo = on_paper(glyph(1500), size=(4032, 3024), at=(1200, 700))
    plain = encode(photo, "JPEG", quality=90)
    carrying = encode(photo, "MPO", save_all=True, append_images=[photo.resize((1008, 756))], quality=90)
    image = decode_image(carrying, MAX_PIXELS)
    assert image.size == (504, 378)  # an eighth, as for the plain JPEG
    np.testing.assert_array_equal(to_mnist_pixels(carrying), to_mnist_pixels(plain))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBa", "F"])
@pytest.mark.parametrize(
    ("size", "shrunk"),
    [
        ((1024, 768), (256, 192)),  # whole 4×4 boxes, nothing left for the resize
        ((2048, 512), (256, 64)),
        ((1024, 791), (256, 198)),  # the last row of boxes only partly there
        ((1100, 800), (256, 186)),  # no whole boxes make 256 px: the box resize, as for every other size
        ((300, 2000), (38, 256)),
        ((400, 300), (256, 192)),
    ],
)
def test_the_working_copy_is_the_box_average(mode: str, size: tuple[int, int], shrunk: tuple[int, int]) -> None:
    """Where whole boxes make the working copy (Pillow's reduce), every pixel is the average of its box within a gray
    level even on noise (the reduce and the box resize round differently); where the last row of boxes is partial,
    close to it on a photo's smooth light and strokes; every other size is the box resize's own result."""
    exact = size[0] % shrunk[0] == 0 and size[1] % shrunk[1] == 0
    rng = np.random.default_rng(size[0])
    if exact:
        channels = () if mode in ("L", "F") else (4 if mode == "RGBa" else 3,)
        values = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
        image = Image.fromarray(values.astype(np.float32) if mode == "F" else values)
    else:  # a glyph on unevenly lit paper, blurred as a phone's optics blur it
        page = on_paper(glyph(min(size) // 2), size=size).filter(ImageFilter.GaussianBlur(2))
        image = page.convert("F") if mode == "F" else page.convert("RGB" if mode == "RGB" else "L")
        if mode == "RGBa":
            image = Image.merge("RGBA", (*page.convert("RGB").split(), page.convert("L"))).convert("RGBa")
    if mode == "RGBa" and exact:
        image = image.convert("RGBa")
    working = shrink(image)
    assert working.size == shrunk and working.mode == mode
    alone = np.asarray(image.resize(shrunk, Image.Resampling.BOX), np.float32)
    difference = np.abs(np.asarray(working, np.float32) - alone)
    if size == (1024, 791):  # all but the last row of boxes whole
        assert difference[:-1].max() <= 1.01 and difference.max() <= 16.0
    else:
        assert difference.max() <= (1.01 if exact else 0.0)


@pytest.mark.parametrize("channels", [(), (3,), (4,)])
@pytest.mark.parametrize(("height", "width"), [(768, 1024), (384, 512), (1024, 1024), (512, 300)])
def test_halving_gives_each_box_its_average_within_a_gray_level(
    channels: tuple[int, ...], height: int, width: int
) -> None:
    """Noise, where rounding shows most: each pixel of the halved copy is its 2×2 or 4×4 box's mean (computed here
    by numpy) within one gray level, and float32 pixels exactly."""
    values = np.random.default_rng(height + width).integers(0, 256, (height, width, *channels), dtype=np.uint8)
    factor = max(height, width) // WORK_SIDE
    boxes = values.reshape(height // factor, factor, width // factor, factor, *channels).astype(np.float64)
    means = boxes.mean(axis=(1, 3))
    small = halved(values)
    assert small is not None and small.shape == means.shape and small.dtype == np.uint8
    assert np.abs(small - means).max() <= 1.0
    exact = halved(values.astype(np.float32))
    assert exact is not None
    np.testing.assert_allclose(exact, means, atol=1e-3)


@pytest.mark.parametrize(
    "shape",
    [
        (192, 256),  # the working copy's size already: nothing to shrink
        (800, 1100),  # no whole factor
        (770, 1024),  # a quarter across, but the rows do not split into whole boxes
        (1536, 2048),  # an eighth: three halvings would round three times; Pillow's reduce does it
    ],
)
def test_halving_declines_what_it_would_not_average_exactly(shape: tuple[int, int]) -> None:
    assert halved(np.zeros(shape, np.uint8)) is None


# ---------------------------------------------------------------- odd but valid files


def _png16() -> bytes:
    return encode(Image.fromarray(np.asarray(glyph(), dtype=np.uint16) * 257), "PNG")


def _cmyk_jpeg() -> bytes:
    ink = glyph()
    zero = Image.new("L", ink.size, 0)
    return encode(Image.merge("CMYK", (zero, zero, zero, ink)), "JPEG", quality=90)


def _palette_png() -> bytes:
    return encode(on_paper(glyph(200)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


def _transparent_gif() -> bytes:
    indices = (np.asarray(glyph()) > 127).astype(np.uint8)  # 0 = transparent black, 1 = opaque black
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 0, 0, 0])
    return encode(image, "GIF", transparency=0)


def _animated_gif() -> bytes:
    first = on_paper(glyph(200)).convert("P")
    second = on_paper(glyph(200).transpose(Image.Transpose.ROTATE_180)).convert("P")
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _float_tiff() -> bytes:
    return encode(Image.fromarray(np.asarray(glyph(), dtype=np.float32) / 255.0, mode="F"), "TIFF")


ODD_FILES = {
    "16-bit grayscale PNG": _png16,
    "CMYK JPEG": _cmyk_jpeg,
    "palette PNG": _palette_png,
    "palette GIF with transparency": _transparent_gif,
    "animated GIF (first frame)": _animated_gif,
    "lossy WebP": lambda: encode(on_paper(glyph(200)), "WEBP", quality=70),
    "lossless RGBA WebP": lambda: encode(on_paper(glyph(200)).convert("RGBA"), "WEBP", lossless=True),
    "deflate TIFF": lambda: encode(on_paper(glyph(200)), "TIFF", compression="tiff_deflate"),
    "32-bit float TIFF": _float_tiff,
    "BMP": lambda: encode(on_paper(glyph(200)), "BMP"),
    "grayscale + alpha PNG": lambda: encode(Image.merge("LA", (Image.new("L", (280, 280), 0), glyph())), "PNG"),
    "1-bit PNG": lambda: encode(glyph().point(lambda v: 255 if v > 127 else 0).convert("1"), "PNG"),
    "progressive JPEG": lambda: encode(on_paper(glyph(200)), "JPEG", progressive=True),
}


@pytest.mark.parametrize("kind", ODD_FILES)
def test_odd_but_valid_files_decode(kind: str, reference: np.ndarray) -> None:
    assert similarity(to_mnist_pixels(ODD_FILES[kind]()), reference) > 0.9


# ---------------------------------------------------------------- bad input


def _png_header(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG that declares width×height 8-bit grayscale pixels, with whatever pixel data `idat` holds."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"hello, this is not an image\n", 415),
        (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), 415),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n", 415),  # Ghostscript never runs
        (encode(Image.new("RGB", (28, 28)), "PPM"), 415),  # Pillow reads it, but it is not a format we accept
        (encode(Image.new("RGB", (32, 32)), "ICO"), 415),
    ],
    ids=["empty", "text", "random bytes", "EPS", "PPM", "ICO"],
)
def test_non_images_are_rejected(data: bytes, status: int) -> None:
    error = error_of(data)
    assert error.status_code == status and isinstance(error, ValueError)
    assert "PNG" in str(error)  # the message says what to send instead


def _avif() -> bytes:
    """A real AVIF file: Pillow writes them, but the service does not decode them."""
    return encode(on_paper(glyph(200)), "AVIF")


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: IPHONE_HEIC, "HEIC images are not accepted (an iPhone's own photo format: convert it to JPEG"),
        (lambda: IPHONE_HEIC.replace(b"ftypheic", b"ftypmif1"), "HEIC images are not accepted"),
        (_avif, "AVIF images are not accepted"),
    ],
    ids=["iPhone HEIC", "HEIF", "AVIF"],
)
def test_photo_formats_sent_by_mistake_are_named(make: Callable[[], bytes], named: str) -> None:
    error = error_of(make())
    assert error.status_code == 415 and str(error).startswith(named)
    assert str(error).endswith("send a PNG, JPEG, GIF, WebP, TIFF or BMP file")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated_files_are_a_400(fmt: str) -> None:
    data = encode(on_paper(glyph(200)).convert("P") if fmt == "GIF" else on_paper(glyph(200)), fmt)
    error = error_of(data[: len(data) // 2])
    assert error.status_code in (400, 415) and "image" in str(error)


def test_header_declaring_huge_image_is_a_413_before_decoding() -> None:
    assert error_of(_png_header(100_000, 100_000)).status_code == 413  # Pillow's own bomb guard
    corrupt_pixels = _png_header(8000, 6000, idat=b"not zlib")  # 48 Mpx: ours, before any pixel is read
    error = error_of(corrupt_pixels)
    assert error.status_code == 413 and "8000×6000" in str(error)


def test_compressed_bomb_is_a_413() -> None:
    bomb = encode(Image.new("1", (10_000, 5_000)), "PNG")  # 50 Mpx of zeros
    assert len(bomb) < 100_000
    assert error_of(bomb).status_code == 413


def test_max_pixels_is_a_parameter() -> None:
    data = encode(on_paper(glyph(100), size=(100, 100), at=(0, 0)), "PNG")
    assert error_of(data, max_pixels=9_999).status_code == 413
    assert to_mnist_pixels(data, max_pixels=10_000).shape == (28, 28)


def test_pillow_bomb_warning_raised_as_error_is_a_413() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert error_of(_png_header(10_000, 10_000), max_pixels=10**9).status_code == 413


def test_corrupted_files_only_ever_raise_image_error() -> None:
    rng = np.random.default_rng(2)
    sources = [
        encode(on_paper(glyph(100), size=(120, 90), at=(10, 0)), fmt) for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
    ] + [_animated_gif()]
    outcomes = set()
    for data in sources:
        for _ in range(40):
            mutated = bytearray(data)
            for position in rng.integers(0, len(data), rng.integers(1, 8)):
                mutated[position] = int(rng.integers(0, 256))
            try:
                outcomes.add(to_mnist_pixels(bytes(mutated)).shape)
            except ImageError as error:
                outcomes.add(error.status_code)
    assert outcomes <= {(28, 28), 400, 413, 415} and 400 in outcomes
