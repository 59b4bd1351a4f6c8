"""app.preprocess.quantiles: the same percentiles and medians as numpy, whatever the data looks like."""

from __future__ import annotations

import numpy as np
import pytest

from app.preprocess.quantiles import median, percentile, percentiles

QS = (0.0, 0.5, 10.0, 37.3, 50.0, 90.0, 99.5, 100.0)


@pytest.mark.parametrize("size", [1, 2, 3, 64, 65, 1001, 12288])
@pytest.mark.parametrize("zeros", [0.0, 0.3, 0.95, 1.0], ids=["no-zeros", "some-zeros", "mostly-zeros", "all-zeros"])
@pytest.mark.parametrize("dtype", ["float32", "uint8", "signed", "ties"])
def test_percentiles_match_numpy(size: int, zeros: float, dtype: str) -> None:
    rng = np.random.default_rng(size)
    if dtype == "uint8":
        values = rng.integers(0, 256, size).astype(np.uint8)
    else:
        values = rng.random(size, dtype=np.float32) - (0.5 if dtype == "signed" else 0.0)
    if dtype == "ties":  # most values one level (a canvas's strokes, all one colour), the rest spread
        values[rng.random(size) < 0.9] = np.float32(20.5)
    values[rng.random(size) < zeros] = 0
    expected = np.percentile(values.astype(np.float64), QS)
    assert percentiles(values, QS) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert percentile(values.reshape(1, -1), 90) == pytest.approx(np.percentile(values, 90), rel=1e-6, abs=1e-6)
    assert median(values) == pytest.approx(float(np.median(values)), rel=1e-6, abs=1e-6)


def test_a_sample_mostly_of_one_value_gives_its_exact_order_statistics() -> None:
    values = np.zeros((96, 128), np.float32)
    values[::7, ::5] = 0.5  # a thresholded ink map: mostly exact zeros, the partition's worst case
    assert median(values) == 0.0 and percentile(values, 99.5) == 0.5
