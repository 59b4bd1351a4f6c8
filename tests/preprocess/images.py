"""Test images for the preprocessing tests: a 7 that no rotation or mirror image resembles, drawn on paper."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from app.preprocess import ImageError, to_mnist_pixels

IPHONE_HEIC = bytes.fromhex("00000018667479706865696300000000") + b"mif1MiHBmiafheic" + bytes(64)
"""The start of an iPhone's HEIC photo: its ftyp box (brand heic; compatible mif1, MiHB, miaf, heic), then an empty
box: what the service sees first of the camera's file."""


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC, for test files written by hand."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def glyph(size: int = 280) -> Image.Image:
    """A continental 7 (white on black): no rotation or mirror image of it looks like itself."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    s = size / 28
    draw.line([(8 * s, 6 * s), (20 * s, 6 * s), (12 * s, 22 * s)], fill=255, width=round(2.5 * s), joint="curve")
    draw.line([(10 * s, 14 * s), (19 * s, 14 * s)], fill=255, width=round(2.5 * s))
    return image.filter(ImageFilter.GaussianBlur(s / 3))


def on_paper(
    ink: Image.Image,
    size: tuple[int, int] = (400, 300),
    at: tuple[int, int] = (60, 10),
    ink_rgb: tuple[int, int, int] = (20, 25, 60),
    paper_rgb: tuple[int, int, int] = (235, 230, 215),
) -> Image.Image:
    """`ink` (white-on-black coverage) drawn in `ink_rgb` on a paper-coloured RGB sheet."""
    coverage = Image.new("L", size, 0)
    coverage.paste(ink, at)
    return Image.composite(Image.new("RGB", size, ink_rgb), Image.new("RGB", size, paper_rgb), coverage)


def similarity(a: np.ndarray, b: np.ndarray, shift: int = 0) -> float:
    """Pearson correlation of two 28×28 results (1 = same picture), the best over shifts up to `shift` px."""
    b = np.pad(b.astype(np.float64), shift)
    return max(
        float(np.corrcoef(a.astype(np.float64).ravel(), b[dy : dy + 28, dx : dx + 28].ravel())[0, 1])
        for dy in range(2 * shift + 1)
        for dx in range(2 * shift + 1)
    )


def silhouette(pixels: np.ndarray | Image.Image, size: int = 20) -> np.ndarray:
    """The ink's bounding box (pixels above 25) stretched to size×size: its shape, whatever its position and scale."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    box = image.point(lambda value: 255 if value > 25 else 0).getbbox()
    return np.asarray(image.crop(box).resize((size, size), Image.Resampling.BOX), dtype=np.float64)


def error_of(data: bytes, **kwargs: object) -> ImageError:
    with pytest.raises(ImageError) as caught:
        to_mnist_pixels(data, **kwargs)
    return caught.value


def ruled(
    ink: Image.Image,
    size: tuple[int, int] = (600, 450),
    at: tuple[int, int] = (200, 120),
    spacing: int = 40,
    squared: bool = True,
    tilt: float = 0.0,
) -> Image.Image:
    """`ink` (white on black) written in dark blue on squared (or lined) paper: light blue 2-px rulings every
    `spacing` px, the page turned by `tilt` degrees under the camera."""
    lines = Image.new("L", (2 * size[0], 2 * size[1]), 0)  # room to turn without bare corners
    draw = ImageDraw.Draw(lines)
    for y in range(0, lines.height, spacing):
        draw.line([(0, y), (lines.width, y)], fill=255, width=2)
    for x in range(0, lines.width, spacing) if squared else ():
        draw.line([(x, 0), (x, lines.height)], fill=255, width=2)
    lines = lines.rotate(tilt, resample=Image.Resampling.BILINEAR)
    left, top = (lines.width - size[0]) // 2, (lines.height - size[1]) // 2
    lines = lines.crop((left, top, left + size[0], top + size[1]))
    page = Image.composite(Image.new("RGB", size, (120, 170, 230)), Image.new("RGB", size, (240, 240, 235)), lines)
    coverage = Image.new("L", size, 0)
    coverage.paste(ink, at)
    return Image.composite(Image.new("RGB", size, (20, 30, 110)), page, coverage)


def pen_line(size: int = 800, width: int = 1) -> Image.Image:
    """The glyph's 7 drawn with a `width`-px pen at `size` px (white on black): MNIST draws it ~2 px of 20."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    s = size / 28
    draw.line([(8 * s, 6 * s), (20 * s, 6 * s), (12 * s, 22 * s)], fill=255, width=width, joint="curve")
    draw.line([(10 * s, 14 * s), (19 * s, 14 * s)], fill=255, width=width)
    return image
