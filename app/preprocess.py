"""Turn what users upload (phone photos, scans, canvas drawings) into MNIST-like input, as one pure function.

    preprocess(data, mean=..., std=...) -> float32 tensor 1×28×28

The steps, each a function below: decode (header-checked, JPEG draft mode) → EXIF orientation → shrink to a small
working copy → flatten transparency → grayscale with dark ink on light (inverting light-on-dark images) → divide
out the background (uneven light, shadows, paper tint) → threshold away paper texture and JPEG noise → keep the
digit's connected strokes and crop to them → fit in 20×20 keeping the aspect ratio → centre by centre of mass in
28×28, as MNIST itself was made → normalise with the checkpoint's mean/std.

Everything works on a working copy whose longer side is at most `WORK_SIDE` pixels, made as early as possible
(JPEGs are decoded at 1/2–1/8 scale directly), so a 1024×768 photo costs a few milliseconds, not tens.

Only PNG, JPEG, GIF, WebP, TIFF and BMP are decoded, recognised from the bytes (never from a declared content type);
Pillow's other plugins (EPS runs Ghostscript, for one) are never reached. Every failure is an `ImageError` whose
message can be shown to the user. An image with no ink in it (a blank canvas or sheet) is also an `ImageError`
(400, "no digit found"): any prediction for it would be noise presented as an answer.
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
"""Longer side of the working copy: enough for a digit that fills a tenth of the photo, cheap to filter."""
BACKGROUND_SIDE = 96
"""Longer side of the even smaller copy on which the paper's brightness is estimated."""
BACKGROUND_WINDOW = 0.3
"""Closing window as a fraction of the longer side: wider than the thickest marker stroke, so strokes vanish."""
ENCLOSED_DEPTH = 3.0
"""Gray levels (of 255) by which basin filling must raise a pixel for it to count as fully enclosed by paper."""
EDGE_INK = 0.45
"""A border pixel this much darker than the paper there is taken for a stroke running off the edge, not shadow."""
GRID_CELLS = 32
"""Cells along the longer side of the grid used to group strokes into connected parts."""
BOX = 20
"""MNIST fits each digit in a 20×20 box..."""
FIELD = 28
"""...and centres it by centre of mass in a 28×28 field."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

DECODE_ERRORS = (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, EOFError, struct.error,
                 ZeroDivisionError, OverflowError, zlib.error)
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

    `status_code`: 400 bad or undecodable image (or no digit in it), 413 too many pixels, 415 not an image format
    we accept.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def preprocess(data: bytes, *, mean: float, std: float, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Bytes of an image file → float32 tensor 1×28×28, normalised with `mean`/`std`. Raises `ImageError`."""
    pixels = torch.from_numpy(to_mnist_pixels(data, max_pixels=max_pixels))
    return normalize(pixels, mean, std).unsqueeze(0)


def to_mnist_pixels(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Bytes of an image file → 28×28 uint8, white ink on black, as an MNIST digit. Raises `ImageError`."""
    image = decode(data, max_pixels)
    orientation = exif_orientation(image)
    image = shrink(image)
    image = orient(image, orientation)
    values = to_array(image)
    values = flatten_alpha(values)
    gray = dark_on_light(values)
    ink = divide_background(gray)
    ink = threshold_noise(ink)
    ink = keep_digit(ink)
    patch = fit_box(crop_to_ink(ink))
    return centre_by_mass(patch)


# ---------------------------------------------------------------- decoding


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Open `data` as one of ACCEPTED_FORMATS, check its size on the header, then decode its (first frame's) pixels.

    JPEGs are decoded straight at the smallest 1/2, 1/4 or 1/8 scale that still covers WORK_SIDE (draft mode).
    """
    if not data:
        raise ImageError("the upload is empty: send an image file (PNG, JPEG, GIF, WebP, TIFF or BMP)")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError("not an image in an accepted format: send a PNG, JPEG, GIF, WebP, TIFF or BMP file",
                         415) from exc
    except BOMB_ERRORS as exc:
        raise ImageError(f"the image has too many pixels (limit {max_pixels}): send a smaller image", 413) from exc
    except DECODE_ERRORS as exc:
        log.info("rejected an unreadable image header: %r", exc)
        raise ImageError("the image file is corrupt or truncated: send it again or in another format") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels: send a real image")
    if width * height > max_pixels:  # before load(): a small file can declare a huge canvas
        raise ImageError(f"the image is {width}×{height} = {width * height} pixels, more than the limit of "
                         f"{max_pixels}: scale it down and send it again", 413)
    try:
        if image.format == "JPEG":
            scale = WORK_SIDE / max(width, height)  # draft keeps at least this size, so quality is not lost
            image.draft(image.mode, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        image.load()
    except BOMB_ERRORS as exc:
        raise ImageError(f"the image has too many pixels (limit {max_pixels}): send a smaller image", 413) from exc
    except (*DECODE_ERRORS, MemoryError) as exc:
        log.info("rejected an undecodable %s image: %r", image.format, exc)
        raise ImageError(f"the {image.format} image could not be decoded (corrupt or truncated file): "
                         "send it again or in another format") from exc
    return image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1–8) of the image; 1 when absent or unreadable (a broken EXIF block is no reason to
    refuse an otherwise good photo)."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except DECODE_ERRORS:
        return 1
    return value if value in TRANSPOSES else 1


def shrink(image: Image.Image) -> Image.Image:
    """Bring the image to one of the modes L, F, RGB, RGBA and, by area averaging, to at most WORK_SIDE pixels.

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
    """Convert any Pillow mode to L (gray), F (16/32-bit gray as float), RGB, or RGBA (anything with transparency)."""
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
    """Apply the EXIF orientation, so a phone photo taken sideways is read upright (cheap on the small copy)."""
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

    A canvas export is dark strokes on fully transparent (usually black, 0,0,0,0) pixels: dropping alpha would make
    everything black. Sparse strokes go on the backdrop that contrasts with them (white for dark strokes, black for
    light ones); a mostly opaque image (a photo with transparent margins) gets its own typical colour as backdrop.
    """
    if values.ndim != 3 or values.shape[2] != 4:
        return values
    colour, alpha = values[:, :, :3], values[:, :, 3] / 255.0
    if alpha.min() >= 1.0:
        return colour
    weight = float(alpha.sum())
    if weight == 0.0:
        return np.full_like(colour, 255.0)  # fully transparent: blank, reported as no digit later
    if weight < 0.5 * alpha.size:
        stroke_luma = float((colour @ LUMA * alpha).sum() / weight)
        backdrop = np.float32(255.0 if stroke_luma < 128.0 else 0.0)
    else:
        backdrop = np.median(colour[alpha > 0.5], axis=0).astype(np.float32)
    alpha = alpha[:, :, None]
    return colour * alpha + backdrop * (1.0 - alpha)


def dark_on_light(values: np.ndarray) -> np.ndarray:
    """Gray image (float32, 0–255) with dark ink on a light background, inverting light-on-dark images.

    The background is what the border mostly shows; ink is on the far side of the brightness range from it.
    For colour, the darkest channel (on light paper) or the brightest (on dark) is used: a yellow or red marker is
    dark in the blue or green channel though light in luminance.
    """
    if values.ndim == 2:
        return values if light_background(values) else 255.0 - values
    red, green, blue = values[:, :, 0], values[:, :, 1], values[:, :, 2]  # ufunc chains: 20× faster than .min(2)
    if light_background(values @ LUMA):
        return np.minimum(np.minimum(red, green), blue)
    return 255.0 - np.maximum(np.maximum(red, green), blue)


def light_background(luma: np.ndarray) -> bool:
    """True unless the border is both dark in absolute terms and nearer the image's dark extreme than its bright one.

    Photos of paper often have darker, shadowed borders and digits too small to move the percentiles, so a plain
    "which extreme is the border nearer" test misfires on them; a dark background (a chalkboard, a dark-mode
    canvas, MNIST itself) is at most half as bright as its ink.
    """
    height, width = luma.shape
    ring = max(1, min(height, width) // 20)
    border = np.concatenate([luma[:ring].ravel(), luma[-ring:].ravel(), luma[:, :ring].ravel(),
                             luma[:, -ring:].ravel()])
    step = max(1, int(math.sqrt(luma.size / 8192)))  # a subsample is plenty for percentiles
    dark, bright = np.percentile(luma[::step, ::step], (0.5, 99.5))
    middle = float(np.median(border))
    return middle - dark >= bright - middle or middle > 0.5 * bright


def divide_background(gray: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1]: 1 − pixel / brightness of the paper under it, kept only where something dark is
    enclosed by lighter paper.

    Both estimates are made on a small copy. The paper's brightness is a grey closing (max then min filter) wider
    than any stroke: strokes vanish from it while gradients, vignetting and broad shadows stay, so ink is equally
    dark in a shadow and in full light. A closing also fills narrow corners of shadows; those, unlike strokes,
    are connected to the border through pixels no lighter than themselves, which `enclosed_depth` detects.
    """
    height, width = gray.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    small = Image.fromarray(gray, mode="F")
    if factor > 1:
        small = small.resize((max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float32)
    window = 2 * int(BACKGROUND_WINDOW * max(values.shape) / 2) + 1
    # Replicating the edges outward makes a shadow along the border as wide as the window, so it stays background
    closed = np.pad(values, window, mode="edge")
    closed = running_extreme(running_extreme(closed, window, np.maximum), window, np.minimum)
    closed = np.ascontiguousarray(closed[window:-window, window:-window])
    enclosed = np.clip((fill_basins(values, closed) - values) / ENCLOSED_DEPTH, 0.0, 1.0)
    enclosed = running_extreme(enclosed, 3, np.maximum)  # reach the antialiased rims of thin strokes too
    if factor > 1:
        closed, enclosed = (np.asarray(Image.fromarray(a, mode="F").resize((width, height), Image.Resampling.BILINEAR))
                            for a in (closed, enclosed))
    paper = np.maximum(closed, gray)  # ink is never brighter than its paper (the upsampled estimate may dip)
    return np.clip(1.0 - gray / np.maximum(paper, 1.0), 0.0, 1.0) * enclosed


def fill_basins(values: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """Grey-level fill of every dark region not connected to the border (reconstruction by erosion).

    Each stroke becomes as bright as the paper around it; anything dark that reaches the border (a shadow) stays.
    Border pixels much darker than `rim` (the paper estimate) are seeded with it instead, so a stroke running off
    the edge is still filled while a shadow, lighter than ink, stays connected to the border.
    """
    inky = values < (1.0 - EDGE_INK) * rim  # much darker than the paper there: a stroke, not a shadow
    seed = np.where(inky, rim, values)
    marker = np.full_like(values, float(rim.max()))
    marker[0], marker[-1], marker[:, 0], marker[:, -1] = seed[0], seed[-1], seed[:, 0], seed[:, -1]
    vertical, both = np.empty_like(marker), np.empty_like(marker)
    for iteration in range(sum(values.shape)):  # the erosion front advances one pixel per pass
        previous = marker.copy() if iteration % 8 == 7 else None
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


def running_extreme(values: np.ndarray, window: int, extreme: np.ufunc) -> np.ndarray:
    """2-D max or min filter (`extreme` = np.maximum / np.minimum) over a square window, clipped at the edges.

    Separable, and van Herk/Gil-Werman per axis: prefix and suffix extremes within blocks of `window`, so the cost
    does not grow with the window.
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
    padded[..., half:half + length] = moved
    blocks = padded.reshape(moved.shape[:-1] + (-1, window))
    prefix = extreme.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = extreme.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    out = extreme(suffix[..., :length], prefix[..., window - 1:window - 1 + length])
    return np.moveaxis(out, -1, axis)


# ---------------------------------------------------------------- from ink strength to one clean digit


def threshold_noise(ink: np.ndarray) -> np.ndarray:
    """Stretch ink strength so strokes are ~1 and paper texture, JPEG noise and faint shadows are exactly 0.

    The stroke level is the strength of the strongest ink (the value a thousandth of the pixels exceed, so a few
    specks cannot set it); anything under 40 % of it, or under the paper's own noise floor (median + 5 robust
    standard deviations), is background. An image without such ink is reported as having no digit.
    """
    step = max(1, int(math.sqrt(ink.size / 8192)))
    sample = ink[::step, ::step]
    typical = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - typical)))
    floor = typical + 5.0 * spread + 0.03
    rank = max(10, ink.size // 1000)
    level = float(np.partition(ink.ravel(), -rank)[-rank])
    low = max(floor, 0.4 * level)
    if level < max(0.08, floor) or np.count_nonzero(ink > low) < rank:
        raise ImageError("no digit found: the image looks blank; draw or photograph a single dark digit on a "
                         "light background (or a light one on dark)")
    return np.clip((ink - low) / max(0.9 * level - low, 1e-3), 0.0, 1.0)


def keep_digit(ink: np.ndarray) -> np.ndarray:
    """Zero everything but the digit: the group of nearby strokes with the most strong ink, plus small parts
    close to it.

    Strokes are grouped on a coarse grid (cells of 1/32 of the image, grown by one cell so a pen lifted briefly
    still joins). Mass is counted as ink², so a solid patch of moderately dark shadow or a smudge loses to real
    strokes, and a group is added only if it lies within a third of the digit's size of it (a detached bar of a
    5 or 7), so specks and shadows elsewhere are dropped.
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
    top, bottom, left, right = _cell_box(labels == best)
    reach = max(1.0, (max(bottom - top, right - left) + 1) / 3)
    keep = [best]
    for label, value in enumerate(masses, start=1):
        if label != best and value >= 0.05 * masses[best - 1]:
            t, b, lft, rgt = _cell_box(labels == label)
            gap = max(top - b, t - bottom, left - rgt, lft - right, 0)
            if gap <= reach:
                keep.append(label)
    cells = np.isin(labels, keep)
    mask = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height, :width]
    return np.where(mask, ink, np.float32(0.0))


def _cell_box(cells: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) cell indices of a non-empty boolean grid, inclusive."""
    rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _grow(cells: np.ndarray) -> np.ndarray:
    """Boolean 3×3 dilation."""
    padded = np.pad(cells, 1)
    out = np.zeros_like(cells)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy:dy + cells.shape[0], dx:dx + cells.shape[1]]
    return out


def _label_cells(cells: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """8-connected components of a small boolean grid (label 1..n) and the ink mass of each."""
    labels = np.zeros(cells.shape, np.int32)
    masses: list[float] = []
    rows, cols = cells.shape
    for start in zip(*np.nonzero(cells), strict=True):
        if labels[start]:
            continue
        label = len(masses) + 1
        labels[start] = label
        stack, total = [start], 0.0
        while stack:
            r, c = stack.pop()
            total += float(mass[r, c])
            for nr in (r - 1, r, r + 1):
                for nc in (c - 1, c, c + 1):
                    if 0 <= nr < rows and 0 <= nc < cols and cells[nr, nc] and not labels[nr, nc]:
                        labels[nr, nc] = label
                        stack.append((nr, nc))
        masses.append(total)
    return labels, masses


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all visible ink (like MNIST's bounding box of nonzero pixels)."""
    rows = np.flatnonzero((ink > 0.1).any(axis=1))
    cols = np.flatnonzero((ink > 0.1).any(axis=0))
    if rows.size == 0:
        raise ImageError("no digit found: draw or photograph a single digit")
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def fit_box(patch: np.ndarray) -> np.ndarray:
    """Resize so the longer side is BOX (20) pixels, keeping the aspect ratio, with antialiasing (as MNIST did)."""
    height, width = patch.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_by_mass(patch: np.ndarray) -> np.ndarray:
    """Paste the patch into a 28×28 field so its centre of mass lands on pixel (14, 14), and quantise to uint8."""
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
    field[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]
    return np.round(field * 255.0).astype(np.uint8)
