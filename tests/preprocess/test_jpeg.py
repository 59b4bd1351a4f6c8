"""app.preprocess.jpeg: plain JPEGs decoded by libjpeg-turbo to Pillow's pixels and metadata; anything else left to
Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.preprocess import ImageError
from app.preprocess.decode import MAX_PIXELS, decode_image, draft_scale
from app.preprocess.jpeg import header_blocks, plain_jpeg
from tests.preprocess.images import encode


def _texture(size: tuple[int, int], mode: str) -> Image.Image:
    """Noise over a gradient: every pixel differs, so equal decodes are equal for a reason."""
    width, height = size
    rng = np.random.default_rng(width * height)
    ramp = np.linspace(40, 220, width, dtype=np.float32)[None, :, None]
    pixels = np.clip(ramp + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _pillow_draft(data: bytes) -> np.ndarray:
    """What Pillow's own path decodes: draft mode at `draft_scale`."""
    image = Image.open(io.BytesIO(data))
    scale = draft_scale(image.size)
    image.draft(image.mode, (image.width // scale, image.height // scale))
    return np.asarray(image)


@pytest.mark.parametrize(
    ("size", "mode", "params"),
    [
        ((1024, 768), "RGB", {"quality": 90}),  # a phone photo: a quarter, 4:2:0 chroma
        ((1031, 517), "RGB", {"quality": 75}),  # sides no scale divides: partial blocks at the edges
        ((2100, 1575), "RGB", {"quality": 85, "subsampling": 0}),  # full chroma: an eighth
        ((700, 500), "RGB", {"quality": 60, "progressive": True}),  # progressive: a half
        ((1024, 768), "L", {"quality": 90}),  # gray
        ((28, 28), "L", {"quality": 95}),  # an MNIST-sized upload: whole
    ],
)
def test_plain_jpegs_decode_to_the_pixels_of_pillows_draft(
    size: tuple[int, int], mode: str, params: dict[str, object]
) -> None:
    data = encode(_texture(size, mode), "JPEG", **params)
    image = plain_jpeg(data, MAX_PIXELS, draft_scale)
    assert image is not None and image.mode == mode
    np.testing.assert_array_equal(np.asarray(image), _pillow_draft(data))


def test_exif_and_xmp_are_read_as_pillow_reads_them() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the camera was held sideways
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    data = encode(_texture((640, 480), "RGB"), "JPEG", exif=exif, xmp=xmp)
    pillow = Image.open(io.BytesIO(data))
    blocks = header_blocks(data)
    assert blocks == {"exif": pillow.info["exif"], "xmp": pillow.info["xmp"]}
    image = plain_jpeg(data, MAX_PIXELS, draft_scale)
    assert image is not None and image.getexif()[0x0112] == 6


def test_an_orientation_only_in_xmp_is_read_too() -> None:
    """Some editors write the orientation to XMP only; Pillow's `getexif` falls back to it, on either path."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    data = encode(_texture((640, 480), "RGB"), "JPEG", xmp=xmp)
    image = plain_jpeg(data, MAX_PIXELS, draft_scale)
    assert image is not None and "exif" not in image.info
    assert image.getexif()[0x0112] == 8 == Image.open(io.BytesIO(data)).getexif()[0x0112]


def test_header_blocks_stop_at_a_length_that_does_not_fit() -> None:
    damaged = b"\xff\xd8\xff\xe1\xff\xf0Exif\x00\x00MM"  # an APP1 claiming 65,520 bytes in a 14-byte file
    assert header_blocks(damaged) == {}


def test_files_libjpeg_turbo_does_not_take_plainly_are_left_to_pillow() -> None:
    photo = encode(_texture((640, 480), "RGB"), "JPEG", quality=90)
    cmyk = encode(_texture((640, 480), "CMYK"), "JPEG", quality=90)
    stray = photo[:-2] + b"\x00\x17\x00" + photo[-2:]  # bytes before the end marker: libjpeg-turbo warns
    truncated = photo[: len(photo) // 2]
    png = encode(_texture((640, 480), "RGB"), "PNG")
    for data in (cmyk, stray, truncated, png):
        assert plain_jpeg(data, MAX_PIXELS, draft_scale) is None
    assert plain_jpeg(photo, 640 * 480 - 1, draft_scale) is None  # over the limit: Pillow's path answers 413
    assert decode_image(cmyk, MAX_PIXELS).mode == "CMYK"  # Pillow's decoder, as before
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(truncated, MAX_PIXELS)
    with pytest.raises(ImageError) as refused:
        decode_image(photo, 640 * 480 - 1)
    assert refused.value.status_code == 413


def test_damaged_jpegs_give_an_image_or_a_clear_error_never_another_exception() -> None:
    """Seeded mutations of a progressive photo with EXIF (bytes changed, cut out, inserted): libjpeg-turbo takes
    some, Pillow others, the rest are refused with an ImageError."""
    rng = np.random.default_rng(7)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = encode(_texture((400, 300), "RGB"), "JPEG", quality=80, progressive=True, exif=exif)
    outcomes = {"libjpeg-turbo": 0, "Pillow": 0, "refused": 0}
    for _ in range(300):
        data = bytearray(photo)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(data)))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                data[at] = int(rng.integers(0, 256))
            elif kind == 1:
                del data[at : at + int(rng.integers(1, 40))]
            else:
                data[at:at] = rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
        damaged = bytes(data)
        header_blocks(damaged)
        fast = plain_jpeg(damaged, MAX_PIXELS, draft_scale) is not None
        try:
            decode_image(damaged, MAX_PIXELS)
            outcomes["libjpeg-turbo" if fast else "Pillow"] += 1
        except ImageError:
            outcomes["refused"] += 1
    assert all(outcomes.values()), outcomes  # every path was exercised
