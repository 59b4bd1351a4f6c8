"""Styles shot with a phone in less friendly conditions: `tilted` and `chalk` (light on dark).

- `tilted`: a page photographed at an angle: rotated up to ±20°, perspective (the camera not square to the
            page, the desk showing past its edges), defocus or shake, shrunk to 160–480 px, JPEG quality 35–60;
- `chalk`:  light on dark: chalk on a green or black board (grain, ragged edges, wiped dust), a light paint
            marker on black paper or a dark board, or a dark-mode drawing app's screenshot (PNG).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.renders import media
from benchmarks.renders.camera import defocus, encode, finish, motion_blur, perspective_coefficients, random_size
from benchmarks.renders.inks import LIGHT_INKS, SCREEN_BACKGROUNDS
from benchmarks.renders.paper import lighting, paper
from benchmarks.renders.strokes import place, stroke_mask, transform_mask
from benchmarks.renders.surfaces import board

DESKS = ((0.45, 0.30, 0.18), (0.25, 0.25, 0.27), (0.75, 0.74, 0.70), (0.12, 0.10, 0.09), (0.55, 0.50, 0.45))
"""Wood, grey, white, dark and beige table tops seen past the page's edges."""


def render_tilted(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A small, tilted, perspective-distorted, blurred, heavily compressed phone photo of a page."""
    page_w, page_h = random_size(rng, 640, 960)
    height_px = rng.uniform(0.3, 0.6) * min(page_w, page_h)
    medium = rng.random()
    fit = (0.8 * page_w, 0.8 * page_h)
    if medium < 0.4:
        drawn = media.pen(digit, rng, height_px, fit, max_degrees=5)
    elif medium < 0.6:
        drawn = media.pencil(digit, rng, height_px, fit, max_degrees=5)
    else:
        drawn = media.marker(digit, rng, height_px, max_degrees=5)
    coverage = place(drawn.coverage, page_w, page_h, rng, centred=rng.uniform(0.3, 0.9))
    albedo = paper(page_w, page_h, rng, texture=rng.uniform(0.2, 1.0))
    albedo *= 1 - coverage[:, :, None] * (1 - drawn.ink)
    page = finish(albedo, rng, noise=0.0)
    shot = photograph(page, rng)
    light = lighting(shot.width, shot.height, rng, strength=rng.uniform(0.2, 0.8)) * rng.uniform(0.8, 1.1)
    rgb = np.asarray(shot, dtype=np.float32) / 255 * light[:, :, None]
    image = finish(rgb, rng, noise=rng.uniform(0.01, 0.04))
    longer = int(rng.integers(160, 481))
    factor = longer / max(image.size)
    image = image.resize(
        (max(16, round(image.width * factor)), max(16, round(image.height * factor))), Image.Resampling.LANCZOS
    )
    image = defocus(image, rng.uniform(0.0, 0.8))
    return encode(image, "JPEG", quality=int(rng.integers(35, 61)))


def photograph(page: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The page seen by a camera rotated by up to ±20° and not square to it, on a desk; same size as the page."""
    width, height = page.size
    angle = math.radians(rng.uniform(-20, 20))
    zoom = rng.uniform(0.85, 1.15)  # below 1 the desk shows past the page's edges
    corners = np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float64)
    centre = np.array([width / 2, height / 2])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    placed = (corners - centre) @ rotation.T * zoom + centre
    placed += rng.uniform(-0.08, 0.08, (4, 2)) * np.array([width, height])  # perspective: corners move unevenly
    desk = tuple(int(255 * c * rng.uniform(0.8, 1.1)) for c in DESKS[int(rng.integers(len(DESKS)))])
    coefficients = perspective_coefficients([tuple(p) for p in placed], [tuple(c) for c in corners])
    shot = page.transform(
        page.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC, fillcolor=desk
    )
    if rng.random() < 0.5:
        return motion_blur(shot, rng.uniform(2, 8), rng.uniform(0, math.pi))
    return defocus(shot, rng.uniform(0.5, 2.5))


def render_chalk(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Light strokes on a dark surface: a chalkboard, a paint marker on black, or a dark-mode app."""
    kind = rng.random()
    if kind < 0.25:
        return dark_mode_canvas(digit, rng)
    width, height = random_size(rng, 480, 1600)
    height_px = rng.uniform(0.3, 0.7) * min(width, height)
    fit = (0.9 * width, 0.9 * height)
    chalky = kind < 0.65
    drawn = media.chalk(digit, rng, height_px, fit) if chalky else media.paint_marker(digit, rng, height_px, fit)
    albedo = board(width, height, rng, smudge=rng.uniform(0.2, 1.0) if chalky else 0.0)
    coverage = place(drawn.coverage, width, height, rng)[:, :, None]
    albedo = albedo * (1 - coverage) + drawn.ink * coverage
    if chalky:  # chalk dust: a faint halo around strokes
        strokes = Image.fromarray((coverage[:, :, 0] * 255).astype(np.uint8))
        halo = np.asarray(strokes.filter(ImageFilter.GaussianBlur(height_px * 0.02)), dtype=np.float32) / 255
        albedo += 0.08 * halo[:, :, None] * drawn.ink
    albedo *= lighting(width, height, rng, strength=rng.uniform(0.1, 0.6))[:, :, None] * rng.uniform(0.9, 1.3)
    image = finish(albedo, rng, noise=rng.uniform(0.01, 0.03))
    return encode(image, "JPEG", quality=int(rng.integers(60, 96)))


def dark_mode_canvas(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A drawing app in dark mode: a light antialiased brush on a near-black background, screenshot as PNG."""
    sizes = ((280, 280), (400, 400), (512, 512), (640, 480), (480, 640), (800, 600))
    width, height = sizes[int(rng.integers(len(sizes)))]
    box = max(28, round(min(width, height) * rng.uniform(0.45, 0.85) * 28 / 20))
    grow = rng.uniform(0.0, 0.02) if rng.random() < 0.5 else 0.0
    mask = transform_mask(stroke_mask(digit, box, rng, grow=grow), rng, max_degrees=8, max_stretch=0.1)
    alpha = place(mask, width, height, rng, centred=rng.uniform(0.3, 1.0))[:, :, None]
    background = np.array(SCREEN_BACKGROUNDS[int(rng.integers(len(SCREEN_BACKGROUNDS)))], np.float32)
    ink = np.array(LIGHT_INKS[int(rng.integers(len(LIGHT_INKS)))], np.float32)
    rgb = background * (1 - alpha) + ink * alpha
    return encode(finish(rgb, rng, noise=0.0), "PNG")
