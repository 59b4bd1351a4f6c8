"""The camera or scanner end of a render: upload sizes, sensor noise, quantisation, blur, perspective, encoding."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.renders.paper import bank_crop, noise_bank

ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)
"""Common photo and screen aspect ratios (width / height)."""
SCAN_ASPECTS = (1 / 1.414, 1.414, 8.5 / 11, 11 / 8.5)
"""A4 and US Letter pages, portrait and landscape."""


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


def scan_size(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    """A (width, height) of a scanned or photocopied page whose longer side is in [low, high]."""
    longer = int(rng.integers(low, high + 1))
    aspect = SCAN_ASPECTS[int(rng.integers(len(SCAN_ASPECTS)))]
    if aspect >= 1:
        return longer, round(longer / aspect)
    return round(longer * aspect), longer


def photo_or_scan(image: Image.Image, rng: np.random.Generator, scan: bool) -> bytes:
    """Encode as people send it: a phone photo is a JPEG (quality 60–95); a scan is a grayscale PNG, an RGB PNG
    or a JPEG."""
    if not scan:
        return encode(image, "JPEG", quality=int(rng.integers(60, 96)))
    kind = rng.random()
    if kind < 0.35:
        return encode(image.convert("L"), "PNG", compress_level=1)
    if kind < 0.5:
        return encode(image, "PNG", compress_level=1)
    return encode(image, "JPEG", quality=int(rng.integers(70, 96)))


def motion_blur(image: Image.Image, length: float, angle: float) -> Image.Image:
    """A straight camera shake of `length` pixels at `angle` radians: the mean of shifted copies."""
    steps = max(2, round(length))
    values = np.asarray(image, dtype=np.float32)
    out = np.zeros_like(values)
    for k in range(steps):
        offset = (k / (steps - 1) - 0.5) * length
        dy, dx = round(offset * np.sin(angle)), round(offset * np.cos(angle))
        out += np.roll(values, (dy, dx), axis=(0, 1))
    return Image.fromarray(np.clip(out / steps, 0, 255).astype(np.uint8), mode=image.mode)


def defocus(image: Image.Image, radius: float) -> Image.Image:
    """Out-of-focus blur (Gaussian) of `radius` pixels; a no-op below a tenth of a pixel."""
    return image if radius < 0.1 else image.filter(ImageFilter.GaussianBlur(radius))


def perspective_coefficients(target: list[tuple[float, float]], source: list[tuple[float, float]]) -> tuple[float, ...]:
    """PIL's 8 PERSPECTIVE coefficients mapping each output point in `target` to the input point in `source`."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64)))
