"""Realistic renders of MNIST test digits in the styles users upload, for accuracy benchmarks and tests.

Each `render_<style>(digit, rng)` takes a real 28×28 uint8 MNIST digit (white on black) and a seeded
`numpy.random.Generator` and returns the bytes of an encoded image file:

- `mnist`:  the digit itself as a 28×28 grayscale PNG (must keep its prediction);
- `photo`:  RGB JPEG of dark ink on unevenly lit, textured paper, with shadows, noise, tilt, 200–1600 px;
- `canvas`: RGBA PNG of dark strokes on a transparent background, like an HTML canvas export;
- `sheet`:  a big digit off-centre on a large, mostly white sheet (grayscale or RGB PNG, or JPEG);
- `marker`: thick (often coloured) marker strokes on white or off-white paper.

Strokes come from the digit upscaled smoothly (bicubic, blurred, then soft-thresholded), so they look like pen
strokes rather than pixel blocks. `render(style, digit, seed)` is the reproducible entry point.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Renderer = Callable[[np.ndarray, np.random.Generator], bytes]

ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)
DARK_INKS = (  # reflectance per channel: black/blue/grey ballpoint, pencil, dark red, dark green, violet
    (0.08, 0.08, 0.09),
    (0.12, 0.14, 0.40),
    (0.05, 0.07, 0.25),
    (0.25, 0.25, 0.27),
    (0.38, 0.38, 0.40),
    (0.45, 0.08, 0.10),
    (0.10, 0.32, 0.15),
    (0.30, 0.12, 0.40),
)
MARKER_INKS = (  # saturated felt-tip colours; yellow-ish ones are dark only in the blue channel
    (0.05, 0.05, 0.05),
    (0.10, 0.25, 0.75),
    (0.85, 0.12, 0.12),
    (0.10, 0.60, 0.20),
    (0.55, 0.15, 0.65),
    (0.95, 0.50, 0.05),
    (0.00, 0.55, 0.65),
    (0.90, 0.20, 0.60),
    (0.30, 0.20, 0.10),
)


# ---------------------------------------------------------------- strokes


def stroke_mask(digit: np.ndarray, box: int, rng: np.random.Generator, grow: float = 0.0) -> np.ndarray:
    """Ink coverage in [0, 1] of the digit drawn in a box×box frame (the 28×28 frame scaled, margins
    included).

    The digit is upscaled bicubically, blurred a little (pen tip) and soft-thresholded at a random level,
    which varies stroke width like different pens do. `grow` (a fraction of the frame) dilates the strokes
    by a disk first, as a felt-tip marker would.
    """
    if grow > 0:
        digit = dilate(digit, grow, rng)
    scale = box / 28
    image = Image.fromarray(digit).resize((box, box), Image.Resampling.BICUBIC)
    image = image.filter(ImageFilter.GaussianBlur(scale * rng.uniform(0.35, 0.7)))
    values = np.asarray(image, dtype=np.float32) / 255
    peak = max(float(values.max()), 1e-3)
    level = rng.uniform(0.3, 0.55) * peak
    edge = max(0.02, 0.6 / scale) * peak  # about one pixel of antialiasing whatever the size
    return np.clip((values - level) / edge + 0.5, 0, 1)


def dilate(digit: np.ndarray, grow: float, rng: np.random.Generator) -> np.ndarray:
    """The digit's strokes thickened by a disk of radius grow×28 px, drawn at 4× resolution for round ends."""
    fine = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float32)
    ink = (fine > rng.uniform(90, 150)).astype(np.uint8)
    radius = grow * 112
    reach = int(math.ceil(radius))
    padded = np.pad(ink, reach)
    out = np.zeros_like(ink)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx <= radius * radius:
                out |= padded[reach + dy : reach + dy + 112, reach + dx : reach + dx + 112]
    small = Image.fromarray(out * 255).resize((28, 28), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def transform_mask(mask: np.ndarray, rng: np.random.Generator, max_degrees: float, max_stretch: float) -> np.ndarray:
    """Tilt the strokes by up to max_degrees and stretch one axis by up to ±max_stretch (hands vary)."""
    image = Image.fromarray((mask * 255).astype(np.uint8))
    image = image.rotate(rng.uniform(-max_degrees, max_degrees), resample=Image.Resampling.BICUBIC, expand=True)
    stretch = 1 + rng.uniform(-max_stretch, max_stretch)
    width, height = image.size
    size = (max(1, round(width * stretch)), max(1, round(height / stretch)))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255


def place(mask: np.ndarray, width: int, height: int, rng: np.random.Generator, centred: float = 0.0) -> np.ndarray:
    """A height×width coverage map with the strokes of `mask` entirely inside, at a random position.

    The mask is cropped to its ink and shrunk if it would not fit; `centred` in [0, 1] pulls it toward the
    middle.
    """
    rows, cols = np.nonzero(mask > 0.01)
    if len(rows):
        mask = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    margin = 2 + min(width, height) // 50
    room_w, room_h = width - 2 * margin, height - 2 * margin
    mh, mw = mask.shape
    if mh > room_h or mw > room_w:
        factor = min(room_h / mh, room_w / mw)
        size = (max(1, int(mw * factor)), max(1, int(mh * factor)))
        mask = np.asarray(Image.fromarray(mask, mode="F").resize(size, Image.Resampling.BILINEAR))
        mh, mw = mask.shape
    fy, fx = rng.uniform(0, 1, 2) * (1 - centred) + centred / 2
    y, x = margin + int(fy * (room_h - mh)), margin + int(fx * (room_w - mw))
    out = np.zeros((height, width), np.float32)
    out[y : y + mh, x : x + mw] = mask
    return out


def frame_for(width: int, height: int, fraction: float) -> int:
    """The 28×28-frame size making a typical digit (20 px of 28 tall) span `fraction` of the shorter side."""
    return max(28, round(min(width, height) * fraction * 28 / 20))


# ---------------------------------------------------------------- paper and light


def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over about width/cells pixels (bicubic upsampled random grid)."""
    gw, gh = max(2, cells), max(2, round(cells * height / width))
    grid = Image.fromarray(rng.standard_normal((gh, gw)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def lighting(width: int, height: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Multiplicative illumination: a linear gradient, vignetting, maybe a hot spot and a cast shadow."""
    small_w, small_h = max(8, width // 4), max(8, height // 4)
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    xs, ys = xs / small_w - 0.5, ys / small_h - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + strength * rng.uniform(0.2, 1.0) * (xs * math.cos(angle) + ys * math.sin(angle))
    light *= 1 - strength * rng.uniform(0, 0.6) * (xs**2 + ys**2)
    if rng.random() < 0.3:  # flash or lamp hot spot
        cx, cy, radius = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.15, 0.5)
        light *= 1 + rng.uniform(0.05, 0.25) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / radius**2)
    if rng.random() < strength * 0.9:  # a hand or phone shadow: a polygon with a soft or hard edge
        light *= 1 - rng.uniform(0.15, 0.45) * shadow_mask(small_w, small_h, rng)
    image = Image.fromarray(light.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def shadow_mask(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """1 inside a random shadow polygon entering from one side of the frame, 0 outside, edge blurred."""
    image = Image.new("L", (width, height), 0)
    side = rng.integers(4)
    depth = rng.uniform(0.1, 0.6)
    a = rng.uniform(-0.3, 0.8)
    b = a + rng.uniform(0.2, 1.0)  # the shadow's base always covers a good part of one side
    corners = {  # a quadrilateral hanging from one side, reaching `depth` into the frame
        0: [(a, 0), (b, 0), (b + 0.2, depth), (a - 0.1, depth + 0.1)],
        1: [(a, 1), (b, 1), (b + 0.1, 1 - depth), (a - 0.2, 1 - depth)],
        2: [(0, a), (0, b), (depth, b + 0.2), (depth + 0.1, a)],
        3: [(1, a), (1, b), (1 - depth, b), (1 - depth - 0.1, a - 0.1)],
    }[int(side)]
    ImageDraw.Draw(image).polygon([(x * width, y * height) for x, y in corners], fill=255)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.005, 0.06) * max(width, height) + 0.3))
    return np.asarray(image, dtype=np.float32) / 255


BANK_SIDE = 1700


@functools.cache
def noise_bank() -> tuple[np.ndarray, np.ndarray]:
    """Fixed white noise and fibre-like (slightly blurred) noise, made once; renders crop them at random
    offsets.

    Drawing fresh per-pixel noise for every 1600 px render dominated the render time; random crops of a fixed
    bank look the same to the preprocessing and keep renders reproducible.
    """
    rng = np.random.default_rng(20240601)
    white = rng.standard_normal((BANK_SIDE, BANK_SIDE, 3), dtype=np.float32)
    grain = Image.fromarray(rng.standard_normal((BANK_SIDE // 3, BANK_SIDE // 3), dtype=np.float32), mode="F")
    fibres = np.asarray(grain.resize((BANK_SIDE, BANK_SIDE), Image.Resampling.BICUBIC), dtype=np.float32)
    return white, fibres


def bank_crop(bank: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A height×width window of a noise bank at a random offset."""
    y, x = rng.integers(0, BANK_SIDE - height + 1), rng.integers(0, BANK_SIDE - width + 1)
    return bank[y : y + height, x : x + width]


def paper(width: int, height: int, rng: np.random.Generator, texture: float) -> np.ndarray:
    """Paper albedo height×width×3: an off-white tint with mottling and fibres scaled by `texture`."""
    tint = (rng.uniform(0.82, 0.97) + rng.uniform(-0.04, 0.03, 3)).astype(np.float32)
    tint[2] -= rng.uniform(0, 0.06)  # paper tends to yellow, not blue
    relief = smooth_noise(width, height, int(rng.integers(4, 12)), rng) * (texture * 0.03)
    relief += bank_crop(noise_bank()[1], width, height, rng) * (texture * 0.02)
    relief += 1
    return relief[:, :, None] * tint


def finish(rgb: np.ndarray, rng: np.random.Generator, noise: float) -> Image.Image:
    """Add sensor noise to a float RGB image in [0, 1] and quantise it to an 8-bit PIL image."""
    rgb *= 255
    if noise > 0:
        rgb += bank_crop(noise_bank()[0], rgb.shape[1], rgb.shape[0], rng) * (noise * 255)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """The bytes of `image` saved as `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def random_size(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    """A (width, height) whose longer side is in [low, high] with a common photo or screen aspect ratio."""
    longer = int(rng.integers(low, high + 1))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    if aspect >= 1:
        return longer, max(16, round(longer / aspect))
    return max(16, round(longer * aspect)), longer


# ---------------------------------------------------------------- styles


def render_mnist(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The MNIST digit itself, as a 28×28 grayscale PNG (white on black)."""
    return encode(Image.fromarray(digit, mode="L"), "PNG")


def render_photo(digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None) -> bytes:
    """A phone photo of dark ink on uneven, textured paper: gradients, shadows, tilt, blur, noise, JPEG."""
    width, height = size or random_size(rng, 200, 1600)
    box = frame_for(width, height, rng.uniform(0.2, 0.75))
    mask = transform_mask(stroke_mask(digit, box, rng), rng, max_degrees=12, max_stretch=0.12)
    if rng.random() < 0.5:  # slight focus blur
        blurred = Image.fromarray((mask * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5) * max(width, height) / 800)
        )
        mask = np.asarray(blurred, dtype=np.float32) / 255
    coverage = place(mask, width, height, rng) * rng.uniform(0.75, 1.0)
    ink = np.clip(np.array(DARK_INKS[int(rng.integers(len(DARK_INKS)))], np.float32) * rng.uniform(0.7, 1.3), 0, 1)
    albedo = paper(width, height, rng, texture=rng.uniform(0.3, 1.5))
    light = lighting(width, height, rng, strength=rng.uniform(0.2, 1.0)) * rng.uniform(0.75, 1.1)  # exposure
    light_colour = 1 + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    # ink absorbs part of the light; the light's tint colours paper and ink alike
    albedo *= (1 - coverage[:, :, None] * (1 - ink)) * light_colour
    albedo *= light[:, :, None]
    image = finish(albedo, rng, noise=rng.uniform(0.005, 0.035))
    return encode(image, "JPEG", quality=int(rng.integers(40, 96)))


def render_canvas(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """An HTML canvas export: RGBA PNG, dark antialiased strokes, transparent (usually 0,0,0,0) background."""
    sizes = ((280, 280), (400, 300), (300, 300), (200, 200), (500, 500), (400, 400), (640, 480), (300, 400))
    width, height = sizes[int(rng.integers(len(sizes)))]
    box = frame_for(width, height, rng.uniform(0.45, 0.9))
    grow = rng.uniform(0.0, 0.025) if rng.random() < 0.5 else 0.0  # brush widths vary
    mask = transform_mask(stroke_mask(digit, box, rng, grow=grow), rng, max_degrees=8, max_stretch=0.1)
    alpha = place(mask, width, height, rng, centred=rng.uniform(0.3, 1.0))
    colour = np.array(DARK_INKS[int(rng.integers(len(DARK_INKS)))]) * 255 * rng.uniform(0.0, 1.2)
    rgba = np.zeros((height, width, 4), np.float32)
    rgba[:, :, :3] = np.clip(colour, 0, 255)
    if rng.random() < 0.5:  # most exporters leave fully transparent pixels as (0, 0, 0, 0)
        rgba[:, :, :3] *= (alpha > 0)[:, :, None]
    rgba[:, :, 3] = alpha * 255
    if rng.random() < 0.1:  # some apps paint an opaque white background first
        rgba[:, :, :3] = rgba[:, :, :3] * alpha[:, :, None] + 255 * (1 - alpha[:, :, None])
        rgba[:, :, 3] = 255
    return encode(Image.fromarray(np.round(rgba).astype(np.uint8), mode="RGBA"), "PNG")


def render_sheet(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A big digit off-centre on a large white sheet (a scan or a clean photo), PNG or JPEG, 800–1600 px."""
    width, height = random_size(rng, 800, 1600)
    box = frame_for(width, height, rng.uniform(0.25, 0.7))
    mask = transform_mask(stroke_mask(digit, box, rng, grow=rng.uniform(0, 0.01)), rng, 8, 0.1)
    coverage = place(mask, width, height, rng)
    white = rng.uniform(0.9, 1.0)
    ink = np.array(DARK_INKS[int(rng.integers(3))], np.float32)
    shade = (1 - coverage)[:, :, None] + coverage[:, :, None] * ink
    if rng.random() < 0.5:  # a scanner's faint uneven exposure
        shade *= lighting(width, height, rng, strength=0.1)[:, :, None]
    rgb = shade * white
    image = finish(rgb, rng, noise=rng.uniform(0.0, 0.015))
    kind = rng.random()
    if kind < 0.3:  # a grayscale scan
        return encode(image.convert("L"), "PNG", compress_level=1)
    if kind < 0.5:
        return encode(image, "PNG", compress_level=1)
    return encode(image, "JPEG", quality=int(rng.integers(60, 96)))


def render_marker(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Thick felt-tip strokes (the digit dilated), often coloured, on white or tinted paper, 250–1200 px."""
    width, height = random_size(rng, 250, 1200)
    box = frame_for(width, height, rng.uniform(0.3, 0.85))
    mask = transform_mask(stroke_mask(digit, box, rng, grow=rng.uniform(0.01, 0.03)), rng, 10, 0.1)
    coverage = place(mask, width, height, rng)
    ink = np.array(MARKER_INKS[int(rng.integers(len(MARKER_INKS)))], np.float32)
    albedo = paper(width, height, rng, texture=rng.uniform(0.0, 0.8))
    albedo *= 1 - coverage[:, :, None] * ((1 - ink) * rng.uniform(0.85, 1.0))
    albedo *= lighting(width, height, rng, strength=rng.uniform(0.0, 0.5))[:, :, None]
    image = finish(albedo, rng, noise=rng.uniform(0.0, 0.02))
    if rng.random() < 0.3:
        return encode(image, "PNG", compress_level=1)
    return encode(image, "JPEG", quality=int(rng.integers(50, 96)))


STYLES: dict[str, Renderer] = {
    "mnist": render_mnist,
    "photo": render_photo,
    "canvas": render_canvas,
    "sheet": render_sheet,
    "marker": render_marker,
}


def render(style: str, digit: np.ndarray, seed: int) -> bytes:
    """Render `digit` (28×28 uint8, white on black) in `style`, reproducibly for a given seed."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    return STYLES[style](np.ascontiguousarray(digit, dtype=np.uint8), np.random.default_rng(seed))
