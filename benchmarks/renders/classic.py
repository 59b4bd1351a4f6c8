"""The first five upload styles (mnist, photo, canvas, sheet, marker): strokes from the source upscaled smoothly.

Each `render_<style>(digit, rng)` takes a source drawing (a 28×28 uint8 MNIST digit, white on black, or any
source as in `strokes`) and a seeded `numpy.random.Generator` and returns the bytes of an encoded image file:

- `mnist`:  the digit itself as a 28×28 grayscale PNG (must keep its prediction);
- `photo`:  RGB JPEG of dark ink on unevenly lit, textured paper, with shadows, noise, tilt, 200–1600 px;
- `canvas`: RGBA PNG of dark strokes on a transparent background, like an HTML canvas export;
- `sheet`:  a big digit off-centre on a large, mostly white sheet (grayscale or RGB PNG, or JPEG);
- `marker`: thick (often coloured) marker strokes on white or off-white paper.

Strokes come from the source upscaled smoothly (bicubic, blurred, then soft-thresholded), so they look like pen
strokes rather than pixel blocks. These renderers draw from the generator in a fixed order: renders made before
the package was split are reproduced byte for byte.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.renders.camera import encode, finish, random_size
from benchmarks.renders.inks import DARK_INKS, MARKER_INKS
from benchmarks.renders.paper import lighting, paper
from benchmarks.renders.strokes import frame_for, place, stroke_mask, transform_mask


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
