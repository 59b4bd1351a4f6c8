"""Turn what users upload (phone photos, scans, canvas drawings) into MNIST-like input, as pure functions.

    to_mnist_pixels(data) -> uint8 28×28, white ink on black: the digit as the model will see it
    inspect_upload(data) -> (the same pixels, Cues): plus cheap measurements of how digit-like the ink is
    preprocess(data, mean=..., std=...) -> float32 tensor 1×28×28: the same, normalised for the model

`to_mnist_pixels` below lists the steps in order; each lives in the module of its concern:

- `decode`: the security surface: accepted formats, the pixel limit checked on the header, decode errors,
  EXIF orientation, and the small working copy (longer side at most `WORK_SIDE`, made as early as possible:
  JPEGs are decoded at 1/2–1/8 scale directly, so a 1024×768 photo costs a few milliseconds, not tens; plain PNGs
  are read by libspng, `png`, big ones with their image data inflated by libdeflate, `restream`; plain JPEGs by
  libjpeg-turbo's own API, `jpeg`).
- `ink`: transparency flattened, one polarity (dark on light), the paper's brightness.
- `background`: uneven light and shadows divided out, strokes equally dark everywhere.
- `page`: a photographed page found against the desk: the ink off it cleared, the digit turned upright.
- `rulings`: the printed lines of squared and lined paper found and erased.
- `strokes`: paper texture and JPEG noise thresholded away, only the digit's strokes kept, their width brought
  to MNIST's (fine pen lines thickened, marker strokes thinned).
- `digit`: MNIST's own geometry (crop, fit 20×20, centre of mass in 28×28) and the pass-through for uploads
  that already are MNIST-format digits.
- `cues`: what the steps saw of the ink (separate parts, what was dropped, shape, stroke width, holes,
  polarity), for deciding elsewhere whether the upload is one digit at all.
- `morphology` and `quantiles`: the filters (OpenCV's) and the fast percentiles the steps share.

Every failure is an `ImageError` (`errors`) whose message can be shown to the user. An image with no ink in it
(a blank canvas or sheet) is also an `ImageError` (400, "no digit found"): any prediction for it would be
noise presented as an answer, and a client can tell the user to draw something.
"""

from __future__ import annotations

import numpy as np
import torch

from app.preprocess.background import divide_background
from app.preprocess.cues import CueNotes, Cues
from app.preprocess.decode import (
    ACCEPTED_FORMATS,
    MAX_PIXELS,
    decode_image,
    exif_orientation,
    looks_like_image,
    orient,
    shrink,
    to_array,
)
from app.preprocess.digit import already_mnist, centre_by_mass, crop_to_ink, fit_box, mnist_png, mnist_pngs
from app.preprocess.errors import BadItem, ImageError
from app.preprocess.ink import bright_paper, dark_on_light, flatten_alpha
from app.preprocess.page import clear_desk, find_page, turn_upright
from app.preprocess.rulings import erase_margins, erase_rulings
from app.preprocess.strokes import fit_stroke_width, keep_digit, threshold_noise
from mnist_model import normalize

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_PIXELS",
    "BadItem",
    "Cues",
    "ImageError",
    "inspect_upload",
    "looks_like_image",
    "mnist_pngs",
    "preprocess",
    "to_mnist_pixels",
    "to_model_input",
]


def preprocess(data: bytes, *, mean: float, std: float, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Bytes of an image file → float32 tensor 1×28×28, normalised with `mean`/`std`. Raises `ImageError`."""
    return to_model_input(to_mnist_pixels(data, max_pixels=max_pixels), mean=mean, std=std)


def to_model_input(pixels: np.ndarray, *, mean: float, std: float) -> torch.Tensor:
    """MNIST-format uint8 pixels, 28×28 (or N×28×28) → float32 1×28×28 (N×1×28×28) normalised with `mean`/`std`.

    The pixels stay untouched (the tensor is a new one), so a caller can still show what the model saw.
    """
    return normalize(torch.from_numpy(pixels), mean, std).unsqueeze(-3)


def inspect_upload(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, Cues]:
    """`to_mnist_pixels` and the `Cues` its steps saw on the way (how digit-like the ink is). Raises `ImageError`."""
    notes = CueNotes()
    pixels = to_mnist_pixels(data, max_pixels, notes)
    return pixels, notes.cues(pixels)


def to_mnist_pixels(data: bytes, max_pixels: int = MAX_PIXELS, notes: CueNotes | None = None) -> np.ndarray:
    """Bytes of an image file → 28×28 uint8, white ink on black, as an MNIST digit. Raises `ImageError`.

    `notes`, when given, collects what the steps measure on the way (`inspect_upload` turns them into `Cues`).
    """
    mnist = mnist_png(data)  # an MNIST-format digit as a plain PNG: read in microseconds, nothing to undo
    if mnist is not None:
        return mnist
    image = decode_image(data, max_pixels)  # only real image formats, size checked before any pixel is decoded
    orientation = exif_orientation(image)  # read now: the tag belongs to the original file
    mnist = already_mnist(image, orientation)
    if mnist is not None:
        return mnist  # already in the model's format: nothing to undo, and ~1 ms saved per request
    image = shrink(image)  # every later step then costs the same, whatever the upload's size
    image = orient(image, orientation)  # a phone photo taken sideways is read upright
    values = flatten_alpha(to_array(image))  # a canvas export's strokes sit on transparent black
    gray = dark_on_light(values, notes)  # one polarity from here on, whatever the user drew with
    bright = bright_paper(gray)  # the paper's brightness, which the desk's and the rulings' darkness are shares of
    page = find_page(gray, bright)  # a photographed page, where the desk shows past its edges
    gray = erase_rulings(gray, bright)  # the printed lines of squared or lined paper crossing the digit go
    ink = divide_background(gray)  # uneven light and shadows divided out, strokes equally dark everywhere
    ink = clear_desk(ink, page)  # the division's slivers along the page's edge are not the digit's
    ink = threshold_noise(ink)  # paper texture and JPEG noise become exactly 0
    ink = erase_margins(ink)  # a lined page's margin, left when its faint rulings were not found, is no stroke
    ink = keep_digit(ink, notes, gray)  # specks, smudges and shadow edges away from the digit go
    ink = turn_upright(crop_to_ink(ink), page)  # written upright on the page: read upright
    patch = crop_to_ink(fit_stroke_width(ink, notes))  # pen lines thickened, marker strokes thinned
    return centre_by_mass(fit_box(patch))  # MNIST's own normalisation: 20×20 box, centre of mass at (14, 14)
