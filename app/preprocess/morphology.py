"""Morphology shared by the ink and stroke steps: a running max/min filter and a boolean 3×3 dilation."""

from __future__ import annotations

import numpy as np


def running_extreme(values: np.ndarray, window: int, extreme: np.ufunc) -> np.ndarray:
    """2-D max or min filter (`extreme` = np.maximum / np.minimum) over a square window, clipped at the edges.

    Separable, and van Herk/Gil-Werman per axis: prefix and suffix extremes within blocks of `window`, so
    the cost does not grow with the window.
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
    padded[..., half : half + length] = moved
    blocks = padded.reshape(moved.shape[:-1] + (-1, window))
    prefix = extreme.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = extreme.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    out = extreme(suffix[..., :length], prefix[..., window - 1 : window - 1 + length])
    return np.moveaxis(out, -1, axis)


def grow(cells: np.ndarray) -> np.ndarray:
    """Boolean 3×3 dilation (separable: four shifted ORs)."""
    tall = cells.copy()
    tall[1:] |= cells[:-1]
    tall[:-1] |= cells[1:]
    out = tall.copy()
    out[:, 1:] |= tall[:, :-1]
    out[:, :-1] |= tall[:, 1:]
    return out
