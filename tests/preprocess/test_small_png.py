"""The fast path for MNIST-format PNGs (app.preprocess.png.small_gray_png, digit.mnist_png): it returns exactly
what Pillow decodes, takes only plain, intact 8-bit grayscale files of the right size, and never changes what a
damaged or unusual file is answered (the full path gives the same pixels or the same error)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app.preprocess import ImageError, to_mnist_pixels
from app.preprocess import digit as digit_module
from app.preprocess.digit import mnist_format, mnist_formats, mnist_png, mnist_pngs
from app.preprocess.png import small_gray_png
from tests.preprocess.images import encode, png_chunk


@pytest.fixture(scope="module")
def mnist_digits(mnist_root: Path) -> np.ndarray:
    from training.data import load_split

    return load_split(mnist_root, train=False).images[:40].numpy()


def _png(pixels: np.ndarray, filters: bytes | None = None, extra: list[bytes] | None = None) -> bytes:
    """A grayscale PNG written by hand: one IDAT, the given per-row filter bytes (default 0), extra chunks."""
    height, width = pixels.shape
    filters = filters or bytes(height)
    rows = b"".join(bytes([filters[i]]) + pixels[i].tobytes() for i in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = [
        png_chunk(b"IHDR", header),
        *(extra or []),
        png_chunk(b"IDAT", zlib.compress(rows)),
        png_chunk(b"IEND", b""),
    ]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _full_path(data: bytes, monkeypatch: pytest.MonkeyPatch) -> np.ndarray | int:
    """What to_mnist_pixels answers without the fast path: the pixels, or the error's status code."""
    with monkeypatch.context() as patch:
        patch.setattr(digit_module, "small_gray_png", lambda data, side: None)
        try:
            return to_mnist_pixels(data)
        except ImageError as exc:
            return exc.status_code


def _answer(data: bytes) -> np.ndarray | int:
    try:
        return to_mnist_pixels(data)
    except ImageError as exc:
        return exc.status_code


def test_mnist_digits_as_pngs_decode_to_their_own_pixels(mnist_digits: np.ndarray) -> None:
    for pixels in mnist_digits:
        data = encode(Image.fromarray(pixels), "PNG")
        fast = small_gray_png(data, 28)
        assert fast is not None
        np.testing.assert_array_equal(fast, pixels)


def test_hand_written_pngs_with_every_filter_type_decode_like_pillow(mnist_digits: np.ndarray) -> None:
    pixels = mnist_digits[0]
    rng = np.random.default_rng(0)
    for _ in range(10):
        filters = bytes(rng.integers(0, 5, 28).tolist())  # stored bytes are pixels; libpng un-filters them
        data = _png(pixels, filters)
        expected = np.asarray(Image.open(io.BytesIO(data)))
        np.testing.assert_array_equal(small_gray_png(data, 28), expected)


@pytest.mark.parametrize(
    "name",
    [
        "rgb",
        "sixteen_bit",
        "wrong_size",
        "text_chunk",
        "exif_chunk",
        "bad_crc",
        "bad_filter",
        "trailing_bytes",
        "truncated",
        "jpeg",
    ],
)
def test_other_files_are_left_to_pillow(name: str, mnist_digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = mnist_digits[1]
    valid = _png(pixels)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "drawn by hand")
    exif = Image.Exif()
    exif[0x0112] = 3
    variants = {
        "rgb": encode(Image.fromarray(pixels).convert("RGB"), "PNG"),
        "sixteen_bit": encode(Image.fromarray(pixels.astype(np.uint16) * 257), "PNG"),
        "wrong_size": encode(Image.fromarray(pixels[:27, :27]), "PNG"),
        "text_chunk": encode(Image.fromarray(pixels), "PNG", pnginfo=info),
        "exif_chunk": encode(Image.fromarray(pixels), "PNG", exif=exif),
        "bad_crc": valid[:-20] + bytes([valid[-20] ^ 1]) + valid[-19:],
        "bad_filter": _png(pixels, bytes([5]) + bytes(27)),
        "trailing_bytes": valid + b"junk",
        "truncated": valid[:-30],
        "jpeg": encode(Image.fromarray(pixels), "JPEG"),
    }
    data = variants[name]
    assert small_gray_png(data, 28) is None
    full, answered = _full_path(data, monkeypatch), _answer(data)
    if isinstance(full, int):
        assert answered == full
    else:
        np.testing.assert_array_equal(answered, full)


def test_an_exif_rotated_png_is_still_rotated(mnist_digits: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down
    data = encode(Image.fromarray(mnist_digits[2][::-1, ::-1]), "PNG", exif=exif)
    assert mnist_png(data) is None
    assert not np.array_equal(to_mnist_pixels(data), mnist_digits[2][::-1, ::-1])


def test_not_mnist_format_takes_the_full_path(mnist_digits: np.ndarray) -> None:
    framed = mnist_digits[3].copy()
    framed[0, :] = 255  # ink on the outer ring: not as MNIST's procedure leaves a digit
    data = encode(Image.fromarray(framed), "PNG")
    assert small_gray_png(data, 28) is not None and mnist_png(data) is None
    blank = encode(Image.fromarray(np.zeros((28, 28), np.uint8)), "PNG")
    assert mnist_png(blank) is None


def test_random_damage_never_changes_the_answer(mnist_digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    for index in range(300):
        data = bytearray(encode(Image.fromarray(mnist_digits[index % len(mnist_digits)]), "PNG"))
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        damaged = bytes(data)
        fast = small_gray_png(damaged, 28)  # must not raise
        full, answered = _full_path(damaged, monkeypatch), _answer(damaged)
        if fast is not None or not isinstance(full, int):
            assert isinstance(answered, np.ndarray) and isinstance(full, np.ndarray)
            np.testing.assert_array_equal(answered, full)
        else:
            assert answered == full


def test_a_batch_takes_exactly_the_mnist_format_pngs_with_their_own_pixels(mnist_digits: np.ndarray) -> None:
    framed = mnist_digits[3].copy()
    framed[0, 5] = 1  # one dim pixel on the outer ring is enough to leave MNIST format
    faint = np.zeros((28, 28), np.uint8)
    faint[10:13, 10:13] = 200  # 9 bright pixels: one short of MIN_MNIST_INK
    valid = encode(Image.fromarray(mnist_digits[0]), "PNG")
    files = [
        valid,
        encode(Image.fromarray(framed), "PNG"),
        encode(Image.fromarray(faint), "PNG"),
        encode(Image.fromarray(mnist_digits[1]), "JPEG"),
        encode(Image.fromarray(mnist_digits[2]).convert("RGB"), "PNG"),
        valid[:-20] + bytes([valid[-20] ^ 1]) + valid[-19:],
        b"not an image",
        *(encode(Image.fromarray(pixels), "PNG") for pixels in mnist_digits[4:]),
    ]
    # ~1 % of MNIST digits touch the outer ring themselves (#26 among these): those are not taken either
    rest = [not (pixels[[0, -1]].any() or pixels[:, [0, -1]].any()) for pixels in mnist_digits[4:]]
    assert 30 <= sum(rest) < len(rest)
    answers = mnist_pngs(files)
    assert [answer is not None for answer in answers] == [True] + [False] * 6 + rest
    for answer, pixels in zip([answers[0], *answers[7:]], [mnist_digits[0], *mnist_digits[4:]], strict=True):
        if answer is not None:
            np.testing.assert_array_equal(answer, pixels)
            assert not answer.flags.writeable  # shared with the batch: nobody may change it
    for data in files:  # a batch of one (/predict's, its own path) is the same decision
        assert (mnist_pngs([data])[0] is None) == (answers[files.index(data)] is None)
    [lone] = mnist_pngs([valid])
    assert lone is not None and not lone.flags.writeable
    np.testing.assert_array_equal(lone, mnist_digits[0])


def test_the_vectorised_format_check_agrees_with_the_single_one(mnist_digits: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    stack = np.concatenate([mnist_digits, rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)])
    stack[:5, 0, :] = 0  # make sure some random and real ones differ only on the ring
    stack[40:45, 1:-1, 1:-1] = 0
    stack[45:50] = 0
    stack[45:50, 10:14, 10:12] = 255  # 8 bright pixels, no ring
    stack[50:55, 27, 3] = 7
    expected = [mnist_format(image) for image in stack]
    assert sum(expected) >= 30 and not all(expected)
    assert mnist_formats(stack).tolist() == expected
