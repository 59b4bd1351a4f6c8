"""Big plain PNGs inflated by libdeflate and unfiltered by libspng (app.preprocess.restream): the same pixels as libspng
decoding the file itself, and any stream that does not inflate to exactly what the header says left to that path."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pyspng
import pytest

from app.preprocess import png as png_module
from app.preprocess.png import plain_png
from app.preprocess.restream import RESTREAM_BYTES, STORED_BLOCK, restream, row_bytes
from tests.preprocess.images import png_chunk

CHANNELS = {0: 1, 2: 3, 6: 4}


def _rows(width: int, height: int, channels: int, seed: int = 0) -> bytes:
    """Inflated PNG image data: every row with a random filter type (all five occur) and grainy, partly flat pixels,
    so that unfiltering and the compressed stream are both non-trivial."""
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width * channels), 235, np.uint8)
    pixels[:, : width * channels // 2] = rng.integers(0, 256, (height, width * channels // 2), dtype=np.uint8)
    filters = rng.integers(0, 5, (height, 1), dtype=np.uint8)
    return np.hstack([filters, pixels]).tobytes()


def _png(width: int, height: int, colour: int, stream: bytes, idat_pieces: int = 1) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    step = -(-len(stream) // idat_pieces)
    idats = b"".join(png_chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idats + png_chunk(b"IEND", b"")


def _restreamed(data: bytes) -> bytes | None:
    """`restream` of a PNG written by `_png` (IHDR, IDATs, IEND)."""
    width, height, _, colour = struct.unpack_from(">IIBB", data, 16)
    offset, bodies = 33, []
    while data[offset + 4 : offset + 8] == b"IDAT":
        (length,) = struct.unpack_from(">I", data, offset)
        bodies.append(memoryview(data)[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return restream(memoryview(data), bodies, row_bytes(width, height, CHANNELS[colour]))


@pytest.mark.parametrize("colour", [0, 2, 6])
@pytest.mark.parametrize("pieces", [1, 7])
def test_restreamed_pngs_decode_to_the_same_pixels(colour: int, pieces: int) -> None:
    width, height = 700, 500  # more than one stored block of rows, and over RESTREAM_BYTES in every mode
    rows = _rows(width, height, CHANNELS[colour])
    assert len(rows) >= RESTREAM_BYTES and len(rows) > 3 * STORED_BLOCK
    for level in (1, 9):
        data = _png(width, height, colour, zlib.compress(rows, level), pieces)
        again = _restreamed(data)
        assert again is not None and again != data
        np.testing.assert_array_equal(pyspng.load(again), pyspng.load(data))
        np.testing.assert_array_equal(plain_png(data, max_pixels=10**7), pyspng.load(data))


def test_a_restreamed_png_holds_the_rows_uncompressed() -> None:
    rows = _rows(600, 500, 1)
    again = _restreamed(_png(600, 500, 0, zlib.compress(rows, 9)))
    assert again is not None
    assert rows[:STORED_BLOCK] in again  # stored blocks: the inflater only copies them
    assert len(again) > len(rows)


def test_a_restreamed_png_is_a_valid_file_with_every_checksum_right() -> None:
    """libspng, as pyspng calls it, ignores chunk CRCs: the ones restream writes are checked here, by zlib, and the
    stream's own (Adler-32) by inflating it, so the file is one any strict reader takes."""
    rows = _rows(700, 300, 4, seed=2)  # several stored blocks, the last one partial
    again = _restreamed(_png(700, 300, 6, zlib.compress(rows, 6), idat_pieces=3))
    assert again is not None
    offset, kinds = 8, []
    while offset < len(again):
        length, kind = struct.unpack_from(">I4s", again, offset)
        body = again[offset + 8 : offset + 8 + length]
        assert struct.unpack_from(">I", again, offset + 8 + length)[0] == zlib.crc32(kind + body), kind
        kinds.append(kind)
        offset += 12 + length
    assert offset == len(again) and kinds == [b"IHDR", b"IDAT", b"IEND"]
    idat = again[41 : 41 + struct.unpack_from(">I", again, 33)[0]]  # after the signature (8) and IHDR (25)
    assert zlib.decompress(idat) == rows  # a checksum off would raise


def _damaged_streams() -> dict[str, bytes]:
    rows = _rows(600, 500, 1, seed=1)
    stream = zlib.compress(rows)
    return {
        "a row too many": zlib.compress(rows + rows[-601:]),
        "a row too few": zlib.compress(rows[:-601]),
        "a byte too few": zlib.compress(rows[:-1]),
        "bad checksum": stream[:-1] + bytes([stream[-1] ^ 1]),
        "cut short": stream[: len(stream) // 2],
        "no checksum": stream[:-4],
        "bytes after the stream": stream + b"\x00\x00",
        "not deflate": b"\x00" * 1000,
    }


@pytest.mark.parametrize("name", list(_damaged_streams()))
def test_streams_that_do_not_inflate_to_the_header_are_not_restreamed(name: str) -> None:
    data = _png(600, 500, 0, _damaged_streams()[name])  # CRCs right: only the stream is wrong
    assert _restreamed(data) is None
    try:
        direct = pyspng.load(data)
    except RuntimeError:
        direct = None
    decoded = plain_png(data, max_pixels=10**7)  # what libspng makes of the file itself, as before restreaming
    if direct is None or direct.shape != (500, 600):
        assert decoded is None
    else:
        np.testing.assert_array_equal(decoded, direct)


def test_a_stream_inflating_far_beyond_its_header_is_never_held() -> None:
    """A decompression bomb in a small header: inflating stops at the header's size."""
    bomb = zlib.compress(b"\x00" * 200_000_000, 9)  # 200 MB of rows in ~200 kB
    data = _png(600, 500, 0, bomb)
    assert _restreamed(data) is None


def test_small_and_huge_pngs_are_not_restreamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small ones: the copies would cost what inflating here saves. Huge ones: the copy of the rows would be too much
    memory (RESTREAM_MAX_BYTES, lowered here so that the test's image counts as huge)."""

    def fail(*args: object) -> None:
        raise AssertionError("restreamed")

    monkeypatch.setattr(png_module, "restream", fail)
    small = _rows(60, 50, 3)
    assert len(small) < RESTREAM_BYTES
    huge = _rows(600, 500, 3)
    monkeypatch.setattr(png_module, "RESTREAM_MAX_BYTES", len(huge) - 1)
    for (width, height), rows in (((60, 50), small), ((600, 500), huge)):
        data = _png(width, height, 2, zlib.compress(rows))
        np.testing.assert_array_equal(plain_png(data, max_pixels=10**7), pyspng.load(data))


def test_random_damage_to_a_big_stream_never_changes_the_answer() -> None:
    """Bytes of the compressed rows changed and the chunk's CRC made right again, so the file reaches the restream
    path: whatever it makes of the stream, the answer is what libspng makes of the file itself (pixels or None)."""
    rng = np.random.default_rng(5)
    rows = _rows(600, 500, 3, seed=2)
    stream = zlib.compress(rows, 6)
    restreamed = 0
    for _ in range(60):
        damaged = bytearray(stream)
        for _ in range(int(rng.integers(1, 4))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        data = _png(600, 500, 2, bytes(damaged))
        restreamed += _restreamed(data) is not None
        try:
            direct = pyspng.load(data)
        except RuntimeError:
            direct = None
        decoded = plain_png(data, max_pixels=10**7)  # must not raise
        if direct is None or direct.shape != (500, 600, 3):
            assert decoded is None
        else:
            np.testing.assert_array_equal(decoded, direct)
    assert restreamed < 60  # most damage breaks the stream or its checksum, and those files went to libspng
