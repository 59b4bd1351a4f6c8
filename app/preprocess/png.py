"""Plain 8-bit gray, RGB and RGBA PNGs read by libspng (pyspng) after their whole structure has been checked: canvas
exports, scans, and the MNIST format itself, as most API clients send digits. Big ones have their image data
inflated by libdeflate first (`restream`). Anything else is left to Pillow's path in `decode` (None here), so damaged or
unusual files get Pillow's decoder and its error messages.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pyspng

from app.preprocess.restream import PNG_SIGNATURE, RESTREAM_BYTES, RESTREAM_MAX_BYTES, restream, row_bytes

PLAIN_CHUNKS = (b"IHDR", b"IDAT", b"IEND", b"gAMA", b"sRGB", b"pHYs", b"tIME", b"cHRM", b"sBIT", b"bKGD")
"""Chunks the libspng path (`plain_png`, `small_gray_png`) accepts: image data and display hints, which neither
decoder applies to the pixels. Text chunks (which can carry EXIF, hence an orientation), colour profiles,
transparency, palettes and anything unknown send the file to Pillow's full path."""
PLAIN_CHANNELS = {0: 1, 2: 3, 6: 4}
"""PNG colour types the libspng path takes (gray, RGB, RGBA), with their channel counts."""


def plain_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """The pixels (H×W gray, H×W×3 RGB or H×W×4 RGBA, uint8) of an intact, plain PNG: 8 bits a channel, not
    interlaced, at most `max_pixels`, only PLAIN_CHUNKS. None for any other file, which Pillow then decodes.

    Why: libspng (pyspng) decodes such a file, what canvas exports and most scans are, to the same pixels in less
    time (medians on the benchmark's renders: canvas exports, ~8 kB, 1.0 against Pillow's 1.9 ms; noisy sheet scans,
    0.5-3.3 MB, 7.8 against 9.6 ms, where inflating dominates). A file too big for the limit is left to Pillow's
    path, which refuses it with its 413 before decoding.
    """
    header = _plain_header(data)
    if header is None:
        return None
    width, height, channels = header
    if width * height > max_pixels:
        return None
    return _spng_pixels(data, (height, width) if channels == 1 else (height, width, channels))


def small_gray_png(data: bytes, side: int) -> np.ndarray | None:
    """The pixels of a `side`×`side` `plain_png` in grayscale, or None for any other file.

    Why: Pillow spends ~40 µs on such a file (an MNIST digit), nearly all of it per-file overhead; checking its
    chunks here and letting libspng decode it costs ~8 µs, which matters when /predict/batch receives 64 of them.
    """
    return _spng_pixels(data, (side, side)) if _plain_header(data) == (side, side, 1) else None


def _plain_header(data: bytes) -> tuple[int, int, int] | None:
    """Width, height and channels of a PNG whose header `plain_png` takes; None for any other file."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 57:  # signature + IHDR (25) + IDAT (12+) + IEND (12)
        return None
    length, kind, width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
        ">I4sIIBBBBB", data, len(PNG_SIGNATURE)
    )
    plain = (length, kind, depth, compression, filtering, interlace) == (13, b"IHDR", 8, 0, 0, 0)
    return (width, height, PLAIN_CHANNELS[colour]) if plain and width and height and colour in PLAIN_CHANNELS else None


def _spng_pixels(data: bytes, shape: tuple[int, ...]) -> np.ndarray | None:
    """libspng's pixels of a PNG whose header was checked, when every chunk is in PLAIN_CHUNKS with the right CRC
    (libspng, as pyspng calls it, does not check them), IHDR first and IEND last with nothing after it, and the
    pixels come out in `shape`; else None. libspng refuses a truncated or malformed image stream (None here), so
    a damaged or unusual file gets Pillow's decoder and its error messages. Big images are inflated by libdeflate
    first (`restream`), where their stream inflates to exactly the rows the header implies."""
    offset, image_data, view = len(PNG_SIGNATURE), [], memoryview(data)
    while True:
        if offset + 12 > len(data):
            return None
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 12 + length
        if end > len(data) or kind not in PLAIN_CHUNKS:
            return None
        if zlib.crc32(view[offset + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return None
        if kind == b"IDAT":
            image_data.append(view[offset + 8 : end - 4])
        offset = end
        if kind == b"IEND":
            break
    if offset != len(data):
        return None
    size = row_bytes(shape[1], shape[0], shape[2] if len(shape) == 3 else 1)
    if RESTREAM_BYTES <= size <= RESTREAM_MAX_BYTES:  # libdeflate inflates, libspng only unfilters (`restream`)
        data = restream(view, image_data, size) or data
    try:
        pixels = pyspng.load(data)
    except RuntimeError:  # pyspng's only error: libspng could not decode the stream
        return None
    return pixels if pixels.shape == shape and pixels.dtype == np.uint8 else None
