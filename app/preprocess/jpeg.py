"""Plain JPEGs (8-bit, YCbCr colour or gray: what phones, scanners and browsers write) decoded by libjpeg-turbo's
TurboJPEG API through simplejpeg, straight at the reduced scale the working copy needs. Anything else (CMYK, unusual
chroma sampling, damaged files, files libjpeg-turbo so much as warns about) is left to Pillow's path in `decode` (None
here), so those files get Pillow's decoder and its error messages, as before.

Why: Pillow parses a JPEG's markers in Python and feeds its decoder in chunks, which on the benchmark's 1,024×768 photo
JPEGs cost ~0.15 ms of a ~1.1 ms decode (the same pixels; docs/benchmarks.md). The EXIF and XMP blocks that carry a
phone photo's orientation are read here as Pillow's JPEG plugin reads them (`header_blocks`), so `decode`'s
`exif_orientation` reads the same orientation from either path.
"""

from __future__ import annotations

from collections.abc import Callable

import simplejpeg
from PIL import Image

JPEG_SIGNATURE = b"\xff\xd8\xff"
"""Start of image, then the first segment's marker."""
DECODED_AS = {"YCbCr": "RGB", "Gray": "GRAY"}
"""Colour spaces a JPEG's header may declare that this path decodes, and the pixels it asks libjpeg-turbo for (the
modes Pillow gives the same files: RGB and L)."""
EXIF_PREFIX = b"Exif\x00\x00"
XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
STANDALONE_MARKERS = frozenset((0x01, *range(0xD0, 0xD8)))
"""Markers with no length after them (TEM, RST0–7)."""
END_OF_HEADER = frozenset((0xDA, 0xD9))
"""Start of scan and end of image: no metadata segment comes after them."""


def plain_jpeg(data: bytes, max_pixels: int, scale_for: Callable[[tuple[int, int]], int]) -> Image.Image | None:
    """The image of a plain JPEG `data`, decoded at 1/`scale_for((width, height))` of its size (RGB or L, as Pillow
    gives it, with the EXIF and XMP blocks in `info`, where Pillow puts them), or None for any other file and for one
    of more than `max_pixels` (Pillow's path refuses it with its 413 before decoding).

    libjpeg-turbo's scaled decode is the one Pillow's draft mode asks for: the same pixels (tests compare them). A file
    it reports any error or warning for (a truncated or corrupt stream, stray bytes between markers) gives None.
    """
    if not data.startswith(JPEG_SIGNATURE):
        return None
    try:
        height, width, colour_space, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:  # simplejpeg's only error: the header could not be read, or is one TurboJPEG does not take
        return None
    target = DECODED_AS.get(colour_space)
    if target is None or width < 1 or height < 1 or width * height > max_pixels:
        return None
    scale = scale_for((width, height))
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=target, min_height=height // scale, min_width=width // scale)
    except ValueError:
        return None
    if pixels.shape[:2] != (-(-height // scale), -(-width // scale)):  # not the scale Pillow's draft would give
        return None
    image = Image.fromarray(pixels[:, :, 0] if target == "GRAY" else pixels)
    image.info.update(header_blocks(data))
    return image


def header_blocks(data: bytes) -> dict[str, bytes]:
    """The EXIF and XMP blocks among the APP1 segments before a JPEG's image data, keyed and joined as Pillow's JPEG
    plugin keys and joins them in `info`: "exif" the first Exif segment whole (its "Exif" prefix included) with any
    later ones' bodies appended, "xmp" the body of the XMP segment. The walk stops at the first byte that is not a
    marker, or at a length that does not fit; a file that damaged is refused by libjpeg-turbo anyway."""
    blocks: dict[str, bytes] = {}
    offset = 2  # after the start-of-image marker
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in END_OF_HEADER:
            break
        if marker in STANDALONE_MARKERS:
            offset += 2
            continue
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = offset + 2 + length
        if length < 2 or end > len(data):
            break
        if marker == 0xE1:
            body = data[offset + 4 : end]
            if body.startswith(EXIF_PREFIX):
                blocks["exif"] = blocks["exif"] + body[len(EXIF_PREFIX) :] if "exif" in blocks else body
            elif body.startswith(XMP_PREFIX):
                blocks["xmp"] = body[len(XMP_PREFIX) :]
        offset = end
    return blocks
