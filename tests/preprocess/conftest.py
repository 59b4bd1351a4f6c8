"""The reference result every encoding of the test 7 should reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from app.preprocess import to_mnist_pixels
from tests.preprocess.images import encode, glyph


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The glyph as a plain grayscale PNG, white on black: what every other encoding should reproduce."""
    return to_mnist_pixels(encode(glyph(), "PNG"))
