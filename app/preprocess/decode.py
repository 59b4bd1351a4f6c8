"""The security surface: which files are decoded at all, how big they may be, and how they are read.

Only PNG, JPEG, GIF, WebP, TIFF and BMP are decoded, recognised from the bytes, never from a declared content
type; Pillow's other plugins (EPS would run Ghostscript) are never reached, and nothing is unpickled. The
pixel count is checked on the header, before any pixel is decoded (a small file can declare a huge canvas).
Every failure is an `ImageError` whose message can be shown to the user.

Plain 8-bit gray, RGB and RGBA PNGs (canvas exports, scans, and the MNIST format itself, as most API clients send
digits) are read by libspng (`png.plain_png`), faster, after their whole structure has been checked, big ones with
their image data inflated by libdeflate first (`restream`); plain JPEGs (8-bit colour or gray) by libjpeg-turbo
through simplejpeg (`jpeg.plain_jpeg`); anything neither takes goes through Pillow.

Decoding also makes the small working copy every later step runs on (JPEGs are decoded at 1/2–1/8 scale
directly, plain RGBA PNGs shrunk as they are wrapped), and reads the EXIF orientation that belongs to the original
file.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from app.preprocess.errors import ImageError
from app.preprocess.jpeg import plain_jpeg
from app.preprocess.png import plain_png

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP")
"""Pillow format names we decode; anything else is answered with 415."""
JPEG_FORMATS = ("JPEG", "MPO")
"""What Pillow's JPEG plugin opens: a JPEG carrying more pictures (MPO: Ultra HDR photos' gain map, cameras' previews)
is still a JPEG whose first picture is the photo, and is decoded at a reduced scale like any (`draft_scale`)."""
MAX_PIXELS = 25_000_000
"""Limit on width × height, checked on the header; the default of MNIST_SERVE_MAX_IMAGE_PIXELS too."""
WORK_SIDE = 256
"""Longer side of the working copy: enough for a digit a fifth of the photo high, cheap to filter."""
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    struct.error,
    ZeroDivisionError,
    OverflowError,
    zlib.error,
)
"""What Pillow's decoders raise on malformed files (found by fuzzing); all become a 400."""
BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
"""Pillow's own size guard (the warning is an exception only when warnings are turned into errors)."""
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation value → the transpose that makes the image upright (as `ImageOps.exif_transpose`)."""
ORIENTATION_TAG = 0x0112


def looks_like_image(data: bytes) -> bool:
    """Whether `data` starts with the signature of one of ACCEPTED_FORMATS (Pillow's own check; nothing decoded)."""
    Image.init()  # registers the format plugins; a no-op after the first call
    prefix = data[:16]
    checks = (Image.OPEN[name][1] for name in ACCEPTED_FORMATS)
    return any(accepts is not None and accepts(prefix) is True for accepts in checks)


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open `data` as an ACCEPTED_FORMATS image, check its size on the header, decode its first frame.

    JPEGs are decoded straight at the smallest 1/2, 1/4 or 1/8 scale that still covers WORK_SIDE (`draft_scale`,
    Pillow's draft mode, or libjpeg-turbo's same scaled decode for plain ones, `plain_jpeg`); plain PNGs by libspng
    (`plain_png`), RGBA ones returned as their working copy already.
    """
    if not data:
        raise ImageError("the upload is empty: send an image file (PNG, JPEG, GIF, WebP, TIFF or BMP)")
    pixels = plain_png(data, max_pixels)
    if pixels is not None:
        return _plain_image(pixels)
    image = plain_jpeg(data, max_pixels, draft_scale)
    if image is not None:
        return image
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{not_accepted(data)}: send a PNG, JPEG, GIF, WebP, TIFF or BMP file", 415) from exc
    except BOMB_ERRORS as exc:
        raise ImageError(too_many_pixels(max_pixels), 413) from exc
    except DECODE_ERRORS as exc:
        log.info("rejected an unreadable image header: %r", exc)
        raise ImageError("the image file is corrupt or truncated: send it again or in another format", 400) from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels: send a real image")
    if width * height > max_pixels:  # before load(): a small file can declare a huge canvas
        raise ImageError(
            f"the image is {width}×{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}: scale it down and send it again",
            413,
        )
    try:
        if image.format in JPEG_FORMATS:
            scale = draft_scale(image.size)  # asking for the sides divided by it makes Pillow pick that scale
            image.draft(image.mode, (width // scale, height // scale))
        image.load()
    except BOMB_ERRORS as exc:
        raise ImageError(too_many_pixels(max_pixels), 413) from exc
    except (*DECODE_ERRORS, MemoryError) as exc:
        log.info("rejected an undecodable %s image: %r", image.format, exc)
        raise ImageError(
            f"the {image.format} image could not be decoded (corrupt or truncated file): "
            "send it again or in another format"
        ) from exc
    return image


HEIF_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"), "HEIC"),
    **dict.fromkeys((b"avif", b"avis"), "AVIF"),
}
"""Major brands of an ISO media file's `ftyp` box that mark HEIF still images (ISO/IEC 23008-12: HEVC-coded, as
iPhones take photos, or another codec in the same container) and AV1-coded ones (AVIF)."""
HEIC_HINT = (
    "an iPhone's own photo format: convert it to JPEG, or set Settings → Camera → Formats → Most Compatible; "
    "browsers convert HEIC uploads to JPEG themselves"
)


def not_accepted(data: bytes) -> str:
    """Why `data` is refused with 415, naming its kind where it is a photo format people send by mistake.

    An iPhone app's upload is the camera's HEIC file unless the app converts it, and AVIF is a newer image format in
    the same container: neither is decoded here (the service has no HEVC decoder, and leaves AVIF out with Pillow's
    other plugins, ACCEPTED_FORMATS), and "not an image" would puzzle whoever sent a photo. The container's first
    box (`ftyp`) names its brand (HEIF_BRANDS).
    """
    kind = HEIF_BRANDS.get(data[8:12]) if data[4:8] == b"ftyp" else None
    if kind == "HEIC":
        return f"HEIC images are not accepted ({HEIC_HINT})"
    if kind is not None:
        return f"{kind} images are not accepted"
    return "not an image in an accepted format"


def draft_scale(size: tuple[int, int]) -> int:
    """The largest of 8, 4, 2 and 1 by which a JPEG of `size` (width, height) can be divided on decoding and still
    cover WORK_SIDE (and keep a pixel across): the image is then decoded straight from its DCT coefficients at
    that size, which costs a fraction of a full decode and loses nothing the working copy would keep."""
    fits = [scale for scale in (8, 4, 2) if max(size) >= WORK_SIDE * scale and min(size) >= scale]
    return fits[0] if fits else 1


def _plain_image(pixels: np.ndarray) -> Image.Image:
    """A `plain_png`'s pixels as an image in one of `unify_mode`'s modes: RGBA premultiplied here, by OpenCV, which
    gives Pillow's RGBa values exactly in under a third of its time (0.09 against 0.33 ms on a canvas export), in
    place (`pixels` is libspng's fresh array: a 1,024-px canvas's 3 MB are not allocated and written twice).

    RGBA comes back as its working copy already (`shrink`'s): Pillow copies an RGBa buffer it is handed (it maps only
    some modes), but maps an RGBX one, whose reduce and resize treat the four bands alike, as they do RGBa's. So the
    premultiplied pixels are shrunk as RGBX without that copy, and only the small result becomes RGBa: the same
    pixels in 0.85–0.95× the time of copying and then shrinking (~0.15 ms less on 1,024-px canvas exports). Where
    the working copy is a half or a quarter of the upload (`halved`: a 1,024×768 or 512×384 export), the array is
    halved as it is, without Pillow at all.
    """
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        height, width = pixels.shape[:2]
        premultiplied = cv2.cvtColor(pixels, cv2.COLOR_RGBA2mRGBA, dst=pixels)
        halving = halved(premultiplied)
        if halving is not None:
            return Image.frombuffer("RGBa", halving.shape[1::-1], halving, "raw", "RGBa", 0, 1)
        working = to_work_size(Image.frombuffer("RGBX", (width, height), premultiplied, "raw", "RGBX", 0, 1))
        return Image.frombuffer("RGBa", working.size, np.asarray(working), "raw", "RGBa", 0, 1)
    halving = halved(pixels)
    return Image.fromarray(pixels if halving is None else halving)


def too_many_pixels(max_pixels: int) -> str:
    """The 413 message when Pillow's own decompression-bomb guard fires."""
    return f"the image has too many pixels (limit {max_pixels}): scale it down and send it again"


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1–8) of the image; 1 when absent or unreadable (a broken EXIF block is no
    reason to refuse an otherwise good photo)."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except DECODE_ERRORS:
        return 1
    return value if value in TRANSPOSES else 1


def shrink(image: Image.Image) -> Image.Image:
    """Bring the image to mode L, F, RGB or RGBa and, by area averaging, to at most WORK_SIDE pixels.

    Done before any filtering so every later step costs the same whatever was uploaded; area averaging also
    smooths JPEG noise and paper grain. Transparency is kept as premultiplied alpha (RGBa), so transparent
    pixels do not bleed their (meaningless) colour into the strokes, and compositing later is one addition.
    """
    return to_work_size(unify_mode(image))


def to_work_size(image: Image.Image) -> Image.Image:
    """`shrink` without the change of mode: the image itself when no side exceeds WORK_SIDE.

    Where whole k×k boxes make exactly the working copy's size (a 1,024×768 or 2,048×1,536 export, k = 4 or 8;
    the last row or column of boxes may be partial), Pillow's `reduce` averages them, 3-4× cheaper than the box
    resize, which gives the same averages within a gray level there (a 1,024×768 canvas export: 1.1 against 3.5
    ms); where k is 2 or 4 and every box is whole, `halved` does it in a quarter of reduce's time. Other sizes get
    the box resize: boxes reduced first and resized again would shift edges by up to half a box.
    """
    width, height = image.size
    size, factor = working_size(width, height)
    if size == (width, height):
        return image
    if factor:
        # decided on the size first: the array is a copy of the whole image, wasted where halving declines
        if image.mode not in ("L", "RGB", "RGBa", "F") or not halving_factor(width, height):
            return image.reduce(factor)
        halving = _halve(np.asarray(image), factor)
        if image.mode == "RGBa":
            return Image.frombuffer("RGBa", size, halving, "raw", "RGBa", 0, 1)
        return Image.fromarray(halving)
    return image.resize(size, Image.Resampling.BOX)


def working_size(width: int, height: int) -> tuple[tuple[int, int], int]:
    """The working copy's size (width, height) for an image of `width`×`height`, and the k of the k×k boxes that make
    it exactly (the last row or column of boxes may be partial), 0 where no whole k does; the image's own size and 1
    where no side exceeds WORK_SIDE."""
    scale = WORK_SIDE / max(width, height)
    if scale >= 1:
        return (width, height), 1
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    factor = round(1 / scale)
    return size, factor if factor > 1 and (-(-width // factor), -(-height // factor)) == size else 0


HALVING_FACTORS = (2, 4)
"""The box sizes `halved` makes the working copy with: one or two halvings, where each halving's rounding keeps every
pixel within a gray level of its box's average; bigger boxes (three roundings) are Pillow's reduce."""


def halved(pixels: np.ndarray) -> np.ndarray | None:
    """The working copy of `pixels` (H×W, H×W×3 or H×W×4; uint8 or float32) where it is exactly a half or a quarter
    of each side, every box whole (a 512×384 or 1,024×768 upload), else None: OpenCV's bilinear resize to exactly
    half the size, once or twice, which at half size reads each output pixel halfway between two input pixels each
    way, so averages each 2×2 box. The same boxes' averages as Pillow's reduce (within a gray level: each halving
    rounds), in a quarter of its time (a 1,024×768 RGBA canvas export: 0.23 against 0.97 ms, one core of the
    AVX512-BF16 VM).
    """
    height, width = pixels.shape[:2]
    factor = halving_factor(width, height)
    return _halve(pixels, factor) if factor else None


def halving_factor(width: int, height: int) -> int:
    """The k of HALVING_FACTORS whose k×k boxes, every one whole, make the working copy of a `width`×`height` image
    (`halved` applies), else 0."""
    (small_width, small_height), factor = working_size(width, height)
    whole = (small_width * factor, small_height * factor) == (width, height)
    return factor if factor in HALVING_FACTORS and whole else 0


def _halve(pixels: np.ndarray, factor: int) -> np.ndarray:
    """`pixels` halved once or twice (`factor` 2 or 4) by OpenCV's bilinear resize to exactly half the size."""
    height, width = pixels.shape[:2]
    for _ in range(factor.bit_length() - 1):
        height, width = height // 2, width // 2
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)
    return pixels


def unify_mode(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to L (gray), F (16/32-bit gray as float), RGB, or RGBa (any transparency, with
    premultiplied alpha). An image already in one of those modes is returned as it is, not copied."""
    mode = image.mode
    try:
        if mode in ("L", "RGB", "F", "RGBa") and "transparency" not in image.info:
            return image
        if mode in ("I", "F") or mode.startswith("I;16"):
            return image.convert("F")  # keeps the full 16-bit range; to_array rescales it
        if "A" in mode or "a" in mode or "transparency" in image.info:
            return (image if mode == "RGBA" else image.convert("RGBA")).convert("RGBa")
        if mode in ("1", "L"):
            return image.convert("L")
        return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX
    except DECODE_ERRORS as exc:
        log.info("cannot convert a %s image: %r", mode, exc)
        raise ImageError(f"unsupported pixel format {mode!r}: send an 8-bit RGB or grayscale image") from exc


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation, so a phone photo taken sideways is read upright (cheap on the copy)."""
    transpose = TRANSPOSES.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def to_array(image: Image.Image) -> np.ndarray:
    """The pixels in [0, 255]: H×W (L, F), H×W×3 (RGB) or H×W×4 (RGBa); uint8, but float32 for mode F,
    whose 16-bit or float data is stretched to the 8-bit range the later constants assume."""
    if image.mode != "F":
        return np.asarray(image)
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = min(0.0, float(values.min())), float(values.max())
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
