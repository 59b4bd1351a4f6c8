"""What the tritonclient tests (HTTP and gRPC) share: the model's name and real MNIST test digits."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

MODEL = "mnist"
DIGITS = 256


@dataclass(frozen=True)
class Digits:
    """MNIST test digits: 28×28 uint8 (white on black), the same as PNG files, and their labels."""

    pixels: np.ndarray
    pngs: np.ndarray  # object array of bytes, as tritonclient wants BYTES
    labels: np.ndarray


@pytest.fixture(scope="module")
def digits(mnist_root) -> Digits:
    from training.data import load_split

    split = load_split(mnist_root, train=False)  # the linked .gz files; no network
    pixels = split.images[:DIGITS].numpy()
    pngs = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return Digits(pixels, np.array(pngs, dtype=np.object_), split.labels[:DIGITS].numpy())
