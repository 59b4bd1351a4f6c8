"""A big PNG's image data inflated by libdeflate and handed to libspng as stored deflate blocks, which it only copies.

Why: decoding a plain 8-bit PNG is two steps, inflating its IDAT stream and undoing each row's filter, and libspng
(pyspng) does the first with the portable zlib built into it. On the 1,024-px uploads of the style benchmark that
inflate was most of the decode: a 1,024×768 RGBA canvas export (31 kB; 3 MB of rows) inflated in ~7 ms with zlib and
~0.6 ms with zlib-ng, while libspng took ~6.3 ms for the whole decode; a noisy 1,024-px gray scan (250 kB) ~2.6 against
~1.7 ms (one-off script, one core of the AVX2 VM). libspng cannot be handed rows, but deflate has stored blocks (a
length, then the bytes as they are), which any inflater only copies. So the rows are inflated here, into a buffer of the
size the header implies (a stream that inflates to more is refused, never held: no bomb), wrapped in stored blocks
inside a PNG with the original header, and libspng unfilters that: the same pixels, bit for bit
(`tests/preprocess/test_restream.py`). libdeflate (the `deflate` package), which inflates a whole buffer at once, does
it in 0.64–0.73× zlib-ng's time (medians: the 1,024-px canvas exports 0.48 against 0.74 ms, the sheet scans' PNGs 1.44
against 1.97 ms; one core of an AVX512-BF16 VM), though it holds the GIL while it inflates, where zlib-ng let other
threads run: a decode thread holds it ~0.5 ms longer for a 1,024-px canvas export, in a decode that holds it ~2 ms
anyway while libspng unfilters (pyspng does not release it either). The file is joined in one copy of the rows (first
the stream, then its chunk, then the file were joined, each a copy: restreaming 1.40 against 1.08 ms, median over the
style benchmark's 1,024-px canvas exports, one core of an AVX512-BF16 VM). What is left of such a decode is libspng's
unfiltering, nearly all of it the rows filtered with Paeth, which its build here undoes byte by byte (~10 µs a 4 kB
row): on 1,024-px canvas exports, a quarter of whose rows are Paeth-filtered at the median, 1.8 of libspng's 2.2 ms
there (the same files with those rows left unfiltered: 0.4 ms; one-off scripts).

Anything unexpected (a stream that inflates to the wrong size, or not at all, or has bytes after it) returns None:
the caller then decodes the original file as before, so damaged files get the same answers and messages they always
did.
"""

from __future__ import annotations

import struct

import deflate

RESTREAM_BYTES = 16 * 1024
"""Inflated image data at least this big (a 128×128 gray scan, a 64×64 RGBA canvas) is restreamed; below it the
extra copies cost more than inflating here saves (measured when zlib-ng inflated: pyspng on the file itself against
restreamed, one-off script, one core: a 28×28 gray digit 5.5 against 11.2 µs, 64×64 gray 15 against 20 µs; at 16 KiB
of rows a canvas 26 against 19 µs, a noisy scan 109 against 91 µs; at 256 KiB 0.45 against 0.16 ms and 1.55 against
1.21 ms)."""
RESTREAM_MAX_BYTES = 16 * 1024 * 1024
"""...and at most this big (a 2,048×2,048 RGBA image): while libspng decodes the restreamed file, the rows are held
once more than when it decodes the upload itself, so a file declaring the pixel limit's worth (25 Mpx, 100 MB as
RGBA) is decoded by libspng alone, and no request holds more than this extra."""
STORED_BLOCK = 65_535
"""The most bytes one stored deflate block holds (its length field is 16 bits)."""
ZLIB_HEADER = b"\x78\x01"
"""A zlib stream's header: deflate, 32 KiB window, no preset dictionary (a multiple of 31, as the format requires)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IHDR_BODY = slice(len(PNG_SIGNATURE) + 8, len(PNG_SIGNATURE) + 21)
"""Where a PNG's header fields lie: the first chunk's 13-byte body, after the signature, its length and its type."""


def row_bytes(width: int, height: int, channels: int) -> int:
    """Size of an 8-bit, non-interlaced PNG's inflated image data: each row is its filter byte and its pixels."""
    return height * (1 + width * channels)


def restream(png: memoryview, image_data: list[memoryview], size: int) -> bytes | None:
    """A PNG with the header of `png` (a file whose chunks were checked: IHDR first) whose image data is the
    inflated `image_data` (its IDAT chunks' bodies, in order) in stored blocks; None unless they inflate to exactly
    `size` bytes, one complete zlib stream. Its other chunks (display hints, which libspng does not apply) stay out.
    The caller keeps `size` within RESTREAM_BYTES and RESTREAM_MAX_BYTES."""
    stream = b"".join(image_data)
    try:
        rows = deflate.zlib_decompress(stream, size)  # into `size` bytes: a stream that inflates to more fails
    except deflate.DeflateError:  # not a zlib stream, cut short, a checksum off, or more than `size` bytes
        return None
    checksum = struct.pack(">I", deflate.adler32(rows))
    # libdeflate checked the stream's own checksum: one that does not end the image data has bytes after it, as before
    if len(rows) != size or not stream.endswith(checksum):
        return None
    # one copy of the rows, into the file itself: the stored blocks' pieces are joined once, each piece's CRC folded
    # in as it is listed (joining the stream, then its chunk, then the file copied 3 MB three times: ~0.5 ms)
    view, crc = memoryview(rows), deflate.crc32(ZLIB_HEADER, deflate.crc32(b"IDAT"))
    blocks = -(-size // STORED_BLOCK)
    pieces: list[bytes | memoryview] = [
        PNG_SIGNATURE,
        _chunk(b"IHDR", bytes(png[IHDR_BODY])),
        struct.pack(">I", len(ZLIB_HEADER) + 5 * blocks + size + 4) + b"IDAT",
        ZLIB_HEADER,
    ]
    for start in range(0, size, STORED_BLOCK):
        length = min(STORED_BLOCK, size - start)
        block = struct.pack("<BHH", start + length == size, length, length ^ 0xFFFF)
        crc = deflate.crc32(view[start : start + length], deflate.crc32(block, crc))
        pieces += (block, view[start : start + length])
    pieces += (checksum, struct.pack(">I", deflate.crc32(checksum, crc)), _chunk(b"IEND", b""))
    return b"".join(pieces)


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC of type and body."""
    checksum = deflate.crc32(body, deflate.crc32(kind))
    return b"".join([struct.pack(">I", len(body)), kind, body, struct.pack(">I", checksum)])
