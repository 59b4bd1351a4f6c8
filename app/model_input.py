"""The image the model classified, for clients that show it ("what the model saw"): 28×28 uint8 → PNG data URL.

A data URL (not bare base64) so that a browser can show it as it is (`<img src>`), and so that it can be sent
back to /predict unchanged (the JSON body accepts data URLs). Encoded only when a client asks for it.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

DATA_URL_PREFIX = "data:image/png;base64,"


def png_data_url(pixels: np.ndarray) -> str:
    """A grayscale PNG of `pixels` (2-D uint8, white ink on black as MNIST) as a `data:image/png;base64,` URL."""
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 array, got {pixels.dtype} with shape {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return DATA_URL_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")
