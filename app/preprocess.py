"""Turn what users upload (phone photos, scans, canvas drawings) into MNIST-like input, as one pure function.

    preprocess(data, mean=..., std=...) -> float32 tensor 1×28×28

The steps, each a function below: decode (header-checked, JPEG draft mode) → read the EXIF orientation →
shrink to a small working copy → orient → flatten transparency → grayscale with dark ink on light (inverting
light-on-dark images) → divide out the paper (uneven light, shadows, tint) → threshold away paper texture
and JPEG noise → keep the digit's strokes → crop → thin marker strokes → fit in 20×20 keeping the aspect
ratio → centre by centre of mass in 28×28, as MNIST itself was made → normalise with the checkpoint's
mean/std.

Everything after decoding works on a copy whose longer side is at most `WORK_SIDE` pixels, made as early as
possible (JPEGs are decoded at 1/2–1/8 scale directly), so a 1024×768 photo costs a few milliseconds, not
tens.

Only PNG, JPEG, GIF, WebP, TIFF and BMP are decoded, recognised from the bytes, never from a declared
content type; Pillow's other plugins (EPS would run Ghostscript) are never reached, and nothing is
unpickled. Every failure is an `ImageError` whose message can be shown to the user. An image with no ink in
it (a blank canvas or sheet) is also an `ImageError` (400, "no digit found"): any prediction for it would be
noise presented as an answer, and a client can tell the user to draw something.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import zlib

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mnist_model import normalize

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP")
"""Pillow format names we decode; anything else is answered with 415."""
MAX_PIXELS = 40_000_000
"""Default limit on width × height, checked on the header before any pixel is decoded."""
WORK_SIDE = 256
"""Longer side of the working copy: enough for a digit a fifth of the photo high, cheap to filter."""
STROKE_SHADES = 64.0
"""Opaque pixels of an RGBA image spanning fewer gray levels than this (10th–90th percentile) are strokes."""
BACKGROUND_SIDE = 64
"""Longer side of the even smaller copy on which the paper's brightness is estimated."""
BACKGROUND_WINDOW = 0.3
"""Closing window, as a fraction of that copy's longer side: wider than a marker stroke, so strokes vanish."""
FLAT_PAPER = 0.08
"""Paper this much darker than the typical bright paper is shaded (ink, at least twice as dark, is not)..."""
FLAT_SHADED = 0.05
"""...and an image with less than this share of shaded paper has no shadows to mistake for ink."""
ENCLOSED_GAIN = 2.0
"""A pixel counts as enclosed ink when filling raises it by half its darkness below the paper..."""
ENCLOSED_ABS = 25.0
"""...or by this many gray levels (of 255), however dark its paper..."""
ENCLOSED_DEPTH = 3.0
"""...but darkness under this many gray levels is paper noise, never ink."""
EDGE_INK = 0.3
"""A border pixel this much darker than the paper there may be a stroke running off the edge..."""
EDGE_RUN = 0.15
"""...if the dark run along the border is at most this fraction of the side; longer runs are shadows."""
GRID_CELLS = 32
"""Cells along the longer side of the grid on which strokes are grouped into parts."""
THICK_STROKE = 2.9
"""Stroke width (px at the 20-px scale) above which strokes are thinned; 90 % of MNIST digits are thinner."""
THIN_STROKE = 2.3
"""Stroke width that thinning aims for (MNIST's median is 2.0)."""
BOX = 20
"""MNIST fits each digit in a 20×20 box..."""
FIELD = 28
"""...and centres it by centre of mass in a 28×28 field."""
MIN_MNIST_INK = 10
"""Bright pixels an MNIST-format upload needs to skip the photo pipeline (the thinnest MNIST "1"s have ~30)."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

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


class ImageError(ValueError):
    """An upload we cannot turn into a digit. The message is safe to show to the user.

    `status_code`: 400 bad or undecodable image (or no digit in it), 413 too many pixels, 415 not an image
    format we accept.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def looks_like_image(data: bytes) -> bool:
    """Whether `data` starts with the signature of one of ACCEPTED_FORMATS (Pillow's own check; nothing decoded)."""
    Image.init()  # registers the format plugins; a no-op after the first call
    prefix = data[:16]
    return any(Image.OPEN[name][1] is not None and Image.OPEN[name][1](prefix) is True for name in ACCEPTED_FORMATS)


def preprocess(data: bytes, *, mean: float, std: float, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Bytes of an image file → float32 tensor 1×28×28, normalised with `mean`/`std`. Raises `ImageError`."""
    pixels = torch.from_numpy(to_mnist_pixels(data, max_pixels=max_pixels))
    return normalize(pixels, mean, std).unsqueeze(0)


def to_mnist_pixels(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Bytes of an image file → 28×28 uint8, white ink on black, as an MNIST digit. Raises `ImageError`."""
    image = decode(data, max_pixels)  # only real image formats, size checked before any pixel is decoded
    orientation = exif_orientation(image)  # read now: the tag belongs to the original file
    mnist = already_mnist(image, orientation)
    if mnist is not None:
        return mnist  # already in the model's format: nothing to undo, and ~1 ms saved per request
    image = shrink(image)  # every later step then costs the same, whatever the upload's size
    image = orient(image, orientation)  # a phone photo taken sideways is read upright
    values = flatten_alpha(to_array(image))  # a canvas export's strokes sit on transparent black
    gray = dark_on_light(values)  # one polarity from here on, whatever the user drew with
    ink = divide_background(gray)  # uneven light and shadows divided out, strokes equally dark everywhere
    ink = threshold_noise(ink)  # paper texture and JPEG noise become exactly 0
    ink = keep_digit(ink)  # specks, smudges and shadow edges away from the digit go
    patch = crop_to_ink(thin_strokes(crop_to_ink(ink)))  # marker strokes back to pen width, as MNIST's
    return centre_by_mass(fit_box(patch))  # MNIST's own normalisation: 20×20 box, centre of mass at (14, 14)


def already_mnist(image: Image.Image, orientation: int) -> np.ndarray | None:
    """The pixels unchanged when the upload already is an MNIST-format digit, else None.

    That is a 28×28 grayscale image, upright, with a pure black outer ring and some bright ink: white on black and
    inside the frame, as MNIST's own procedure leaves it (98.9 % of the MNIST test digits). Running such an image
    through the photo pipeline could only move it away from what the model was trained on.
    """
    if image.size != (FIELD, FIELD) or image.mode != "L" or orientation != 1:
        return None
    pixels = np.asarray(image, dtype=np.uint8)
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if ring.any() or np.count_nonzero(pixels > 127) < MIN_MNIST_INK:
        return None
    return pixels.copy()


# ---------------------------------------------------------------- decoding


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Open `data` as an ACCEPTED_FORMATS image, check its size on the header, decode its first frame.

    JPEGs are decoded straight at the smallest 1/2, 1/4 or 1/8 scale that still covers WORK_SIDE (draft mode).
    """
    if not data:
        raise ImageError("the upload is empty: send an image file (PNG, JPEG, GIF, WebP, TIFF or BMP)")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(
            "not an image in an accepted format: send a PNG, JPEG, GIF, WebP, TIFF or BMP file", 415
        ) from exc
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
        if image.format == "JPEG":
            scale = WORK_SIDE / max(width, height)  # draft keeps at least this size, so quality is not lost
            image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
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
    """Bring the image to mode L, F, RGB or RGBA and, by area averaging, to at most WORK_SIDE pixels.

    Done before any filtering so every later step costs the same whatever was uploaded; area averaging also
    smooths JPEG noise and paper grain. RGBA is resized with premultiplied alpha, so transparent pixels do not
    bleed their (meaningless) colour into the strokes.
    """
    image = unify_mode(image)
    width, height = image.size
    scale = WORK_SIDE / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return image


def unify_mode(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to L (gray), F (16/32-bit gray as float), RGB, or RGBA (any transparency)."""
    mode = image.mode
    try:
        if mode in ("I", "F") or mode.startswith("I;16"):
            return image.convert("F")  # keeps the full 16-bit range; to_array rescales it
        if "A" in mode or "a" in mode or "transparency" in image.info:
            return image.convert("RGBA")
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
    """The pixels as float32 in [0, 255]: H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA)."""
    values = np.asarray(image, dtype=np.float32)
    if image.mode == "F":  # 16-bit or float data: stretch to the 8-bit range the later constants assume
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = min(0.0, float(values.min())), float(values.max())
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return values


# ---------------------------------------------------------------- colour to "ink darkness"


def flatten_alpha(values: np.ndarray) -> np.ndarray:
    """Composite an RGBA image onto an opaque backdrop chosen so that the strokes stay visible.

    A canvas export is strokes of one colour on fully transparent (usually black, 0,0,0,0) pixels: dropping
    alpha would make everything black. Such strokes go on the backdrop that contrasts with them (white for
    dark strokes, black for light ones), however much of the canvas they cover. Opaque content of many
    shades (a photo with transparent margins) has its own background, so its typical colour fills the
    transparent part.
    """
    if values.ndim != 3 or values.shape[2] != 4:
        return values
    colour, alpha = values[:, :, :3], values[:, :, 3] / 255.0
    if alpha.min() >= 1.0:
        return colour
    opaque = colour[alpha > 0.5]
    if opaque.size == 0:
        return np.full_like(colour, 255.0)  # (nearly) fully transparent: blank, reported as no digit later
    shades = opaque[:: max(1, len(opaque) // 4096)] @ LUMA
    darkest, median, lightest = np.percentile(shades, (10, 50, 90))
    if lightest - darkest < STROKE_SHADES:
        backdrop = np.float32(255.0 if median < 128.0 else 0.0)
    else:
        backdrop = np.median(opaque, axis=0).astype(np.float32)
    alpha = alpha[:, :, None]
    return colour * alpha + backdrop * (1.0 - alpha)


def dark_on_light(values: np.ndarray) -> np.ndarray:
    """Gray image (float32, 0–255) with dark ink on a light background, inverting light-on-dark images.

    The background is what the border mostly shows; ink is on the far side of the brightness range from it.
    For colour, the darkest channel (on light paper) or the brightest (on dark) is used: a yellow or red
    marker is dark in the blue or green channel though light in luminance.
    """
    if values.ndim == 2:
        return values if light_background(values) else 255.0 - values
    red, green, blue = values[:, :, 0], values[:, :, 1], values[:, :, 2]  # chained ufuncs: 20× min(axis=2)
    if light_background(values @ LUMA):
        return np.minimum(np.minimum(red, green), blue)
    return 255.0 - np.maximum(np.maximum(red, green), blue)


def light_background(luma: np.ndarray) -> bool:
    """True unless the border is both dark in absolute terms and nearer the image's dark extreme than its
    bright one.

    Photos of paper often have darker, shadowed borders and digits too small to move the percentiles, so a
    plain "which extreme is the border nearer" test misfires on them; a dark background (a chalkboard, a
    dark-mode canvas, MNIST itself) is at most half as bright as its ink.
    """
    height, width = luma.shape
    ring = max(1, min(height, width) // 20)
    border = np.concatenate(
        [luma[:ring].ravel(), luma[-ring:].ravel(), luma[:, :ring].ravel(), luma[:, -ring:].ravel()]
    )
    step = max(1, int(math.sqrt(luma.size / 8192)))  # a subsample is plenty for percentiles
    dark, bright = np.percentile(luma[::step, ::step], (0.5, 99.5))
    middle = float(np.median(border))
    return middle - dark >= bright - middle or middle > 0.5 * bright


def divide_background(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1]: 1 − pixel / brightness of the paper under it, where something dark is enclosed.

    Both are estimated on a small copy. The paper is the brighter of a grey closing (max then min filter)
    wider than most strokes, which keeps gradients, vignetting and broad shadows, and `fill_basins`, which
    also restores paper under strokes too thick for the closing. Dividing by it leaves ink equally dark in a
    shadow and in full light. A closing also fills narrow corners of shadows, but those, unlike strokes,
    connect to the border through pixels no lighter than themselves, so filling does not raise them: ink
    strength is kept in proportion to how much of a pixel's darkness filling explains (ENCLOSED_*).
    """
    height, width = gray.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    small = Image.fromarray(gray, mode="F")
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        small = small.resize(size, Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float32)
    window = 2 * int(BACKGROUND_WINDOW * max(values.shape) / 2) + 1
    closed = running_extreme(running_extreme(values, window, np.maximum), window, np.minimum)
    sample = gray[::2, ::2]  # finer than `values`, whose blur would make the rims of strokes look shaded
    bright = float(np.percentile(sample, 90))
    rims = _grow(_grow(_grow(sample <= 0.5 * bright)))  # the soft edges of ink are not shade
    shaded = np.count_nonzero((sample < (1 - FLAT_PAPER) * bright) & ~rims) / sample.size
    if shaded < FLAT_SHADED:  # even paper (a canvas, a scan; ink is darker): no shadow to mistake for ink
        paper, enclosed = np.full_like(values, bright), np.ones_like(values)
    else:
        filled = fill_basins(values, closed)
        paper = np.maximum(closed, filled)  # filling also restores paper under strokes too wide for closing
        raised = filled - values
        # ×ENCLOSED_GAIN: a stroke running from light into shadow, only partly a basin where lit, counts fully
        enclosed = np.maximum(
            ENCLOSED_GAIN * raised / np.maximum(paper - values, ENCLOSED_DEPTH), raised / ENCLOSED_ABS
        )
        enclosed = running_extreme(np.clip(enclosed, 0.0, 1.0), 3, np.maximum)  # antialiased stroke rims too
    if factor > 1:
        paper, enclosed = (
            np.asarray(Image.fromarray(a, mode="F").resize((width, height), Image.Resampling.BILINEAR))
            for a in (paper, enclosed)
        )
    paper = np.maximum(paper, gray)  # ink is never brighter than its paper (the upsampled estimate may dip)
    return np.clip(1.0 - gray / np.maximum(paper, 1.0), 0.0, 1.0) * enclosed


def fill_basins(values: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """Grey-level fill of every dark region not connected to the border (reconstruction by erosion).

    Each stroke becomes as bright as the paper around it; anything dark that reaches the border (a shadow)
    stays. A short dark run along the border (a stroke running off the edge) is seeded with `rim`, the paper
    estimate, so it is still filled; a long one (a shadow) is seeded with itself and stays.
    """
    seeded = values.copy()
    for side in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        seeded[side] = _seed_edge(values[side], rim[side])
    # Start from the best straight path to each side (the brightest pixel met on the way is as high as the
    # fill can need there): the same result as starting from "everything full", in a few passes, not dozens.
    marker = np.minimum(
        np.minimum(np.maximum.accumulate(seeded, axis=0), np.maximum.accumulate(seeded[::-1], axis=0)[::-1]),
        np.minimum(np.maximum.accumulate(seeded, axis=1), np.maximum.accumulate(seeded[:, ::-1], axis=1)[:, ::-1]),
    )
    vertical, both = np.empty_like(marker), np.empty_like(marker)
    for iteration in range(sum(values.shape)):  # the erosion front advances one pixel per pass
        previous = marker.copy() if iteration % 4 == 3 else None
        vertical[:] = marker  # 3×3 minimum filter, separable, in place
        np.minimum(vertical[1:], marker[:-1], out=vertical[1:])
        np.minimum(vertical[:-1], marker[1:], out=vertical[:-1])
        both[:] = vertical
        np.minimum(both[:, 1:], vertical[:, :-1], out=both[:, 1:])
        np.minimum(both[:, :-1], vertical[:, 1:], out=both[:, :-1])
        np.maximum(both, values, out=marker)
        if previous is not None and np.array_equal(previous, marker):
            break
    return marker


def _seed_edge(edge: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """One border line of the fill marker: its own values, but short runs of ink (strokes) get the rim."""
    inky = np.concatenate(([False], edge < (1.0 - EDGE_INK) * rim, [False]))
    changes = np.flatnonzero(inky[1:] != inky[:-1]).reshape(-1, 2)  # [start, end) of each dark run
    seed = edge.copy()
    for start, end in changes:
        if end - start <= EDGE_RUN * edge.size:
            seed[start:end] = rim[start:end]
    return seed


def running_extreme(values: np.ndarray, window: int, extreme: np.ufunc) -> np.ndarray:
    """2-D max or min filter (`extreme` = np.maximum / np.minimum) over a square window, clipped at the edges.

    Separable, and van Herk/Gil-Werman per axis: prefix and suffix extremes within blocks of `window`, so
    the cost does not grow with the window.
    """
    for axis in (0, 1):
        values = _running_extreme_1d(values, window, extreme, axis)
    return values


def _running_extreme_1d(values: np.ndarray, window: int, extreme: np.ufunc, axis: int) -> np.ndarray:
    moved = np.moveaxis(values, axis, -1)
    length = moved.shape[-1]
    if window <= 1 or length == 1:
        return values
    half = window // 2
    padded_length = -(-(length + 2 * half) // window) * window
    fill = -np.inf if extreme is np.maximum else np.inf
    padded = np.full(moved.shape[:-1] + (padded_length,), fill, np.float32)
    padded[..., half : half + length] = moved
    blocks = padded.reshape(moved.shape[:-1] + (-1, window))
    prefix = extreme.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = extreme.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    out = extreme(suffix[..., :length], prefix[..., window - 1 : window - 1 + length])
    return np.moveaxis(out, -1, axis)


# ---------------------------------------------------------------- from ink strength to one clean digit


def threshold_noise(ink: np.ndarray) -> np.ndarray:
    """Stretch ink strength so strokes are ~1 and paper texture, JPEG noise and faint shadows are exactly 0.

    The stroke level is the strength of the strongest ink (the value a thousandth of the pixels exceed, so a
    few specks cannot set it). Pixels within one pixel of ink at 40 % of that level keep their strength
    above the paper's own noise floor (median + 5 robust standard deviations of the pixels well below the
    stroke level, so a digit covering much of the image does not count as noise), so antialiased edges
    survive as in MNIST; everything else is background. An image without such ink has no digit.
    """
    rank = max(10, ink.size // 1000)
    candidates = ink[ink > 0.02]  # partitioning only these is fast; the many equal zeros make it slow
    level = float(np.partition(candidates, -rank)[-rank]) if candidates.size >= rank else 0.0
    step = max(1, int(math.sqrt(ink.size / 8192)))
    sample = ink[::step, ::step]
    paper = sample[sample < 0.25 * level]
    typical = float(np.median(paper)) if paper.size else 1.0
    spread = 1.4826 * float(np.median(np.abs(paper - typical))) if paper.size else 0.0
    floor = typical + 5.0 * spread + 0.03
    strong = ink > max(floor, 0.4 * level)
    if level < max(0.08, floor) or np.count_nonzero(strong) < rank:
        raise ImageError(
            "no digit found: the image looks blank; draw or photograph a single dark digit on a "
            "light background (or a light one on dark)"
        )
    soft = np.clip((ink - floor) / max(0.9 * level - floor, 1e-3), 0.0, 1.0)
    return np.where(_grow(strong), soft, np.float32(0.0))


def keep_digit(ink: np.ndarray) -> np.ndarray:
    """Zero everything but the digit: the group of nearby strokes with the most strong ink, plus small parts
    close to it.

    Strokes are grouped on a coarse grid (cells of 1/32 of the image, grown by one cell so a pen lifted
    briefly still joins). Mass is counted as ink², so a solid patch of moderately dark shadow or a smudge
    loses to real strokes. Groups within a third of the digit-so-far's size are added, repeatedly (a
    detached bar of a 5, a dotted stroke); specks and shadows elsewhere are dropped.
    """
    height, width = ink.shape
    cell = max(2, math.ceil(max(height, width) / GRID_CELLS))
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, cols * cell), np.float32)
    padded[:height, :width] = ink
    blocks = padded.reshape(rows, cell, cols, cell)
    occupied = blocks.sum(axis=(1, 3)) > 0.5 * cell  # at least half a cell-width of solid stroke
    strength = np.square(blocks).sum(axis=(1, 3))
    labels, masses = _label_cells(_grow(occupied), strength)
    if not masses or max(masses) <= 0.0:
        raise ImageError("no digit found: draw or photograph a single digit")
    best = int(np.argmax(masses)) + 1
    boxes = {
        label: _cell_box(labels == label)
        for label, value in enumerate(masses, start=1)
        if label == best or value >= 0.05 * masses[best - 1]
    }
    keep, (top, bottom, left, right) = {best}, boxes[best]
    grew = True
    while grew:  # absorb parts near the digit so far, so a dotted or broken stroke is followed to its end
        grew = False
        reach = max(1.0, (max(bottom - top, right - left) + 1) / 3)
        for label, (t, b, lft, rgt) in boxes.items():
            if label not in keep and max(top - b, t - bottom, left - rgt, lft - right, 0) <= reach:
                keep.add(label)
                top, bottom, left, right = min(top, t), max(bottom, b), min(left, lft), max(right, rgt)
                grew = True
    cells = np.isin(labels, list(keep))
    mask = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]
    return np.where(mask, ink, np.float32(0.0))


def _cell_box(cells: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) cell indices of a non-empty boolean grid, inclusive."""
    rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _grow(cells: np.ndarray) -> np.ndarray:
    """Boolean 3×3 dilation (separable: four shifted ORs)."""
    tall = cells.copy()
    tall[1:] |= cells[:-1]
    tall[:-1] |= cells[1:]
    out = tall.copy()
    out[:, 1:] |= tall[:, :-1]
    out[:, :-1] |= tall[:, 1:]
    return out


def _label_cells(cells: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """8-connected components of a small boolean grid (labels 1..n, 0 = empty) and the `mass` of each."""
    todo = set(zip(*(index.tolist() for index in np.nonzero(cells)), strict=True))
    labels = np.zeros(cells.shape, np.int32)
    masses: list[float] = []
    while todo:  # plain Python sets: on a grid of at most 32×32 cells, faster than numpy indexing
        stack = [todo.pop()]
        members = []
        while stack:
            r, c = stack.pop()
            members.append((r, c))
            for neighbour in (
                (r - 1, c - 1),
                (r - 1, c),
                (r - 1, c + 1),
                (r, c - 1),
                (r, c + 1),
                (r + 1, c - 1),
                (r + 1, c),
                (r + 1, c + 1),
            ):
                if neighbour in todo:
                    todo.remove(neighbour)
                    stack.append(neighbour)
        rows, cols = zip(*members, strict=True)
        labels[rows, cols] = len(masses) + 1
        masses.append(float(mass[rows, cols].sum()))
    return labels, masses


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all visible ink (like MNIST's bounding box of nonzero pixels)."""
    rows = np.flatnonzero((ink > 0.02).any(axis=1))
    cols = np.flatnonzero((ink > 0.02).any(axis=0))
    if rows.size == 0:
        raise ImageError("no digit found: draw or photograph a single digit")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def thin_strokes(patch: np.ndarray) -> np.ndarray:
    """Erode strokes much thicker than MNIST's (a felt-tip marker) back to a typical MNIST width.

    Width is estimated as 2 × area / perimeter of the ink and judged at the 20-pixel scale the digit will
    have: MNIST digits measure 2.0 px (95 % under 3.1), so only strokes above THICK_STROKE are thinned, to
    THIN_STROKE.
    """
    inked = np.pad(patch > 0.5, 1)
    area = np.count_nonzero(inked)
    perimeter = np.count_nonzero(inked[1:] != inked[:-1]) + np.count_nonzero(inked[:, 1:] != inked[:, :-1])
    if area == 0 or perimeter == 0:
        return patch
    scale = BOX / max(patch.shape)
    width = 2.0 * area / perimeter * scale
    radius = int((width - THIN_STROKE) / 2 / scale)  # patch pixels; rounded down: a square window erodes more
    if width <= THICK_STROKE or radius < 1:
        return patch
    return running_extreme(np.ascontiguousarray(patch), 2 * radius + 1, np.minimum)


def fit_box(patch: np.ndarray) -> np.ndarray:
    """Resize so the longer side is BOX (20) pixels, keeping the aspect ratio, antialiased (as MNIST did)."""
    height, width = patch.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_by_mass(patch: np.ndarray) -> np.ndarray:
    """Paste the patch into a 28×28 field with its centre of mass on pixel (14, 14); quantise to uint8."""
    total = float(patch.sum())
    if total <= 0.0:
        raise ImageError("no digit found: draw or photograph a single digit")
    height, width = patch.shape
    ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    centre_y = float(patch.sum(axis=1) @ ys) / total
    centre_x = float(patch.sum(axis=0) @ xs) / total
    top, left = round(FIELD / 2 - centre_y), round(FIELD / 2 - centre_x)
    field = np.zeros((FIELD, FIELD), np.float32)
    y0, x0 = max(0, top), max(0, left)  # clip a patch pushed partly outside (a very lopsided digit)
    y1, x1 = min(FIELD, top + height), min(FIELD, left + width)
    field[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.round(field * 255.0).astype(np.uint8)
