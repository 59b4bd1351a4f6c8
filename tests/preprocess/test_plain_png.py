"""The libspng path for plain PNGs of any size (app.preprocess.png.plain_png): the same pixels as Pillow for the
files it takes, and every other file, damaged or unusual, answered exactly as Pillow's path answers it."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app.preprocess import ImageError, to_mnist_pixels
from app.preprocess import decode as decode_module
from app.preprocess.decode import MAX_PIXELS, decode_image, shrink
from app.preprocess.png import plain_png
from tests.preprocess.images import encode, glyph, on_paper, png_chunk


def _pillow_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """`data` (a PNG) with one more chunk right after IHDR."""
    after_header = 8 + 25
    return data[:after_header] + png_chunk(kind, body) + data[after_header:]


def _answer(data: bytes) -> np.ndarray | int:
    try:
        return to_mnist_pixels(data)
    except ImageError as exc:
        return exc.status_code


def _pillow_answer(data: bytes, monkeypatch: pytest.MonkeyPatch) -> np.ndarray | int:
    """What to_mnist_pixels answers with every PNG decoded by Pillow."""
    with monkeypatch.context() as patch:
        patch.setattr(decode_module, "plain_png", lambda data, max_pixels: None)
        return _answer(data)


def _same_answer(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, full = _answer(data), _pillow_answer(data, monkeypatch)
    if isinstance(full, int):
        assert fast == full
    else:
        assert isinstance(fast, np.ndarray)
        np.testing.assert_array_equal(fast, full)


def _page(mode: str, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A 7 on grainy paper (noise makes the filters and the compressed stream non-trivial), in `mode`."""
    rng = np.random.default_rng(sum(size))
    page = np.asarray(on_paper(glyph(300), size=size, at=(size[0] // 4, size[1] // 8)), dtype=np.int16)
    grainy = np.clip(page + rng.integers(-12, 13, page.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(grainy)
    if mode == "RGBA":  # a canvas export: the ink opaque, its antialiased rims partly, the rest transparent
        darkness = 255 - grainy.min(axis=2).astype(np.int16)
        alpha = Image.fromarray(np.clip(3 * (darkness - 60), 0, 255).astype(np.uint8))
        return Image.merge("RGBA", (*image.split(), alpha))
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(640, 480), (97, 1203), (1, 1)])
def test_plain_pngs_decode_to_pillows_pixels(mode: str, size: tuple[int, int]) -> None:
    for level in (0, 6, 9):
        data = encode(_page(mode, size), "PNG", compress_level=level)
        pixels = plain_png(data, max_pixels=10**7)
        assert pixels is not None
        np.testing.assert_array_equal(pixels, _pillow_pixels(data))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_plain_pngs_are_answered_as_pillows_path_answers_them(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(_page(mode), "PNG")
    assert plain_png(data, max_pixels=10**7) is not None
    _same_answer(data, monkeypatch)  # RGBA: premultiplied by OpenCV, by Pillow on its path


@pytest.mark.parametrize("size", [(1024, 768), (1100, 800), (200, 150)])
def test_a_plain_rgba_png_decodes_to_pillows_working_copy(size: tuple[int, int]) -> None:
    """Shrunk as it is wrapped (reduced, resized, or left as it is): the pixels Pillow's own RGBa makes."""
    data = encode(_page("RGBA", size), "PNG")
    image = decode_image(data, MAX_PIXELS)
    pillows = shrink(Image.open(io.BytesIO(data)))  # Pillow's decode, premultiplication and shrinking
    assert image.mode == pillows.mode == "RGBa" and image.size == pillows.size
    np.testing.assert_array_equal(np.asarray(image), np.asarray(pillows))


def test_display_hint_chunks_change_no_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(_page("RGB"), "PNG")
    for kind, body in ((b"gAMA", struct.pack(">I", 100000)), (b"sRGB", b"\x00"), (b"sBIT", b"\x05\x05\x05")):
        hinted = _with_chunk(data, kind, body)
        pixels = plain_png(hinted, max_pixels=10**7)
        assert pixels is not None
        np.testing.assert_array_equal(pixels, _pillow_pixels(data))
    _same_answer(_with_chunk(data, b"gAMA", struct.pack(">I", 100000)), monkeypatch)


def _unusual_files() -> dict[str, bytes]:
    page = _page("RGB")
    plain = encode(page, "PNG")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "scanned")
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: Pillow's path must see the tag
    return {
        "palette": encode(page.convert("P"), "PNG"),
        "transparent colour": encode(page, "PNG", transparency=(235, 230, 215)),
        "gray and alpha": encode(page.convert("LA"), "PNG"),
        "sixteen bit": encode(Image.fromarray(np.asarray(page.convert("L"), np.uint16) * 257), "PNG"),
        "interlaced": _interlaced(page),
        "text chunk": encode(page, "PNG", pnginfo=info),
        "exif chunk": encode(page, "PNG", exif=exif),
        "bad crc": plain[:-20] + bytes([plain[-20] ^ 1]) + plain[-19:],
        "trailing bytes": plain + b"junk",
        "truncated": plain[: len(plain) // 2],
    }


def _interlaced(image: Image.Image) -> bytes:
    """An Adam7-interlaced copy (Pillow cannot write one): the same PNG with its interlace flag set and the
    pixels re-encoded in seven passes."""
    pixels = np.asarray(image)
    height, width, channels = pixels.shape
    passes = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
    stream = b"".join(
        b"\x00" + row.tobytes()
        for top, left, down, across in passes
        for row in pixels[top::down, left::across]
        if row.size
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    assert channels == 3
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(stream)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.mark.parametrize("name", list(_unusual_files()))
def test_other_pngs_are_left_to_pillow_and_answered_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _unusual_files()[name]
    assert plain_png(data, max_pixels=10**7) is None
    _same_answer(data, monkeypatch)


def test_the_exif_tag_of_a_png_still_turns_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 3
    page = _page("RGB", (512, 384))  # halved exactly to the working copy, so turning commutes with shrinking
    upright = to_mnist_pixels(encode(page, "PNG"))
    np.testing.assert_array_equal(to_mnist_pixels(encode(page.rotate(180), "PNG", exif=exif)), upright)


def test_a_png_over_the_pixel_limit_is_refused_before_decoding() -> None:
    data = encode(_page("RGB"), "PNG")  # 640 × 480 = 307,200 pixels
    assert plain_png(data, max_pixels=307_199) is None
    with pytest.raises(ImageError) as caught:
        to_mnist_pixels(data, max_pixels=307_199)
    assert caught.value.status_code == 413
    assert plain_png(data, max_pixels=307_200) is not None


def test_random_damage_never_changes_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    sources = [encode(_page(mode, (200, 150)), "PNG") for mode in ("L", "RGB", "RGBA")]
    taken = 0
    for index in range(120):
        data = bytearray(sources[index % len(sources)])
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        damaged = bytes(data)
        taken += plain_png(damaged, max_pixels=10**7) is not None  # must not raise
        _same_answer(damaged, monkeypatch)
    assert taken < 120  # most damage breaks a CRC, and those files went to Pillow
