"""Whole sets of renders for a split: the digits a benchmark or a training run iterates over, and non-digits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.renders.nondigits import CATEGORIES, NonDigit, render_nondigit
from benchmarks.renders.splits import DigitPool, digit_pool
from benchmarks.renders.styles import STYLES, check_style, render


@dataclass(frozen=True)
class DigitRender:
    """One digit upload: the file's bytes, the true digit, and where it came from."""

    data: bytes
    label: int
    style: str
    split: str
    pool_index: int
    """Position in the split's pool (for `test`, the MNIST test index)."""
    mnist_index: int
    """Position in the MNIST file the digit comes from (training file for train and threshold)."""
    seed: int


def render_seed(seed: int, style: str, index: int) -> int:
    """A distinct, reproducible render seed per (run seed, style, pool index); styles keep their position in
    STYLES, so seeds of the first styles never change."""
    return (seed * 1_000_003 + list(STYLES).index(check_style(style)) * 100_000 + index) % 2**32


def pick_digits(pool_size: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct pool positions (at most the pool's size), the same for every style."""
    return np.random.default_rng(seed).choice(pool_size, size=min(count, pool_size), replace=False)


def digit_renders(
    style: str,
    split: str,
    count: int,
    seed: int = 0,
    pool: DigitPool | None = None,
    data_dir: str | Path = "data",
) -> Iterator[DigitRender]:
    """`count` renders of distinct digits of the split's pool in `style` (call again with another `seed` for
    more). The digits picked depend on `seed` only, so every style sees the same digits."""
    pool = pool if pool is not None else digit_pool(split, data_dir)
    if pool.split != split:
        raise ValueError(f"a {split} render needs the {split} pool, not the {pool.split} one")
    for index in pick_digits(len(pool), count, seed):
        index = int(index)
        render_at = render_seed(seed, style, index)
        yield DigitRender(
            data=render(style, pool.images[index], render_at, split),
            label=int(pool.labels[index]),
            style=style,
            split=split,
            pool_index=index,
            mnist_index=int(pool.mnist_indices[index]),
            seed=render_at,
        )


def nondigit_renders(
    split: str,
    count: int,
    seed: int = 0,
    categories: Iterable[str] = CATEGORIES,
    pool: DigitPool | None = None,
    data_dir: str | Path = "data",
) -> Iterator[NonDigit]:
    """`count` non-digit renders per category (styles drawn at random), reproducibly for `seed`."""
    categories = tuple(categories)
    if "numbers" in categories and pool is None:
        pool = digit_pool(split, data_dir)
    for category in categories:
        for k in range(count):
            yield render_nondigit(category, seed * 1_000_003 + k, split, pool=pool)
