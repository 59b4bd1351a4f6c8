"""Styles of everyday writing on paper: `pen`, `pencil`, `grid` (squared or ruled paper).

- `pen`:    ballpoint or fineliner, blue or black, stroke 1–3 % of the digit's height, pressure variation, the
            odd skip; white paper, phone photo (JPEG, 640–1600 px) or page scan (PNG or JPEG, 900–1700 px);
- `pencil`: grey graphite, low contrast, paper-tooth grain and streaks along the stroke; photo or scan;
- `grid`:   squared (graph) or ruled (lined) paper, blue/grey/green lines 1.5–5 squares or 0.8–2.5 rules per
            digit height crossing the digit, written in pen, pencil or marker; photo or scan.

Thin strokes follow the digit's centre line (`centreline`), so they keep its shape at any width.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.renders import media
from benchmarks.renders.camera import finish, photo_or_scan, random_size, scan_size
from benchmarks.renders.paper import lighting, paper
from benchmarks.renders.strokes import place
from benchmarks.renders.surfaces import random_ruling, ruling_albedo


def page_size(rng: np.random.Generator, scan: bool) -> tuple[int, int]:
    """A scanned page (900–1700 px) or a phone photo (640–1600 px)."""
    return scan_size(rng, 900, 1700) if scan else random_size(rng, 640, 1600)


def on_paper(drawn: media.Drawn, albedo: np.ndarray, rng: np.random.Generator, scan: bool) -> bytes:
    """Lay the drawing on `albedo` (same size), light it like a photo or a scanner, and encode it."""
    height, width = albedo.shape[:2]
    coverage = place(drawn.coverage, width, height, rng)
    albedo *= 1 - coverage[:, :, None] * (1 - drawn.ink)
    if scan:
        albedo *= rng.uniform(1.0, 1.1)  # scanners push paper to white
    else:
        albedo *= lighting(width, height, rng, strength=rng.uniform(0.1, 0.7))[:, :, None] * rng.uniform(0.85, 1.1)
    image = finish(albedo, rng, noise=rng.uniform(0.003, 0.012) if scan else rng.uniform(0.005, 0.03))
    return photo_or_scan(image, rng, scan)


def render_pen(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Thin ballpoint or fineliner strokes on white paper."""
    scan = rng.random() < 0.35
    width, height = page_size(rng, scan)
    height_px = max(100.0, rng.uniform(0.25, 0.65) * min(width, height))
    drawn = media.pen(digit, rng, height_px, fit=(0.9 * width, 0.9 * height))
    return on_paper(drawn, paper(width, height, rng, texture=rng.uniform(0.1, 0.6)), rng, scan)


def render_pencil(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Grey, grainy graphite on white or off-white paper."""
    scan = rng.random() < 0.3
    width, height = page_size(rng, scan)
    height_px = max(100.0, rng.uniform(0.25, 0.65) * min(width, height))
    drawn = media.pencil(digit, rng, height_px, fit=(0.9 * width, 0.9 * height))
    return on_paper(drawn, paper(width, height, rng, texture=rng.uniform(0.3, 1.2)), rng, scan)


def render_grid(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Pen, pencil or marker on squared or ruled paper whose printed lines cross the digit."""
    scan = rng.random() < 0.3
    width, height = page_size(rng, scan)
    height_px = max(100.0, rng.uniform(0.25, 0.6) * min(width, height))
    page_angle = math.radians(rng.uniform(-6, 6)) if not scan else math.radians(rng.uniform(-1.5, 1.5))
    ruling = random_ruling(rng, height_px, page_angle)
    albedo = paper(width, height, rng, texture=rng.uniform(0.1, 0.8)) * ruling_albedo(width, height, ruling, rng)
    medium = rng.random()
    fit = (0.9 * width, 0.9 * height)
    if medium < 0.45:
        drawn = media.pen(digit, rng, height_px, fit, max_degrees=8)
    elif medium < 0.8:
        drawn = media.pencil(digit, rng, height_px, fit, max_degrees=8)
    else:
        drawn = media.marker(digit, rng, height_px, max_degrees=8)
    return on_paper(drawn, albedo, rng, scan)
