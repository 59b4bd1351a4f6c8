"""Train / threshold / test: which MNIST digits and which random streams each split may use.

- Source digits: `test` renders draw MNIST *test* digits (all 10,000); `train` renders draw MNIST training digits
  0–49,999 and `threshold` renders training digits 50,000–59,999 (the classic 50k/10k train/validation cut).
- Random streams: a render's generator is `numpy.random.default_rng(SeedSequence(seed, spawn_key=key))` whose
  spawn key starts with the split's code (none for digit renders of `test`, which keeps the seeds of the first
  benchmark runs), so two splits never share a stream, whatever seeds their callers pick.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "threshold", "test")
SPLIT_CODES = {"train": 1, "threshold": 2, "test": 3}
"""Spawn-key codes; 0 is never used, so no keyed stream equals an unkeyed one."""
TRAIN_DIGITS = range(0, 50_000)
"""MNIST training-set indices of the `train` split's source digits."""
THRESHOLD_DIGITS = range(50_000, 60_000)
"""MNIST training-set indices of the `threshold` split's source digits."""
NONDIGIT_STREAM = 7
"""First spawn-key word of every non-digit stream (digit streams have at most one word)."""


def check_split(split: str) -> str:
    """`split` itself, or a ValueError naming the valid ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    return split


def digit_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of a digit render: `default_rng(seed)` for `test` (as before splits existed), a stream keyed
    by the split otherwise."""
    if check_split(split) == "test":
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_CODES[split],)))


def nondigit_rng(seed: int, split: str, category: str) -> np.random.Generator:
    """The generator of a non-digit render, keyed by split and category (never equal to a digit stream)."""
    key = (NONDIGIT_STREAM, SPLIT_CODES[check_split(split)], zlib.crc32(category.encode()))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class DigitPool:
    """The source digits of one split: `images` N×28×28 uint8 (white on black), `labels` N int64, and
    `mnist_indices` N, their positions in the MNIST file named by `mnist_file` ("train" or "test")."""

    split: str
    images: np.ndarray
    labels: np.ndarray
    mnist_indices: np.ndarray
    mnist_file: str

    def __len__(self) -> int:
        return len(self.labels)


def digit_pool(split: str, data_dir: str | Path = "data") -> DigitPool:
    """The split's source digits, read from `data_dir`/MNIST/raw (as `training.data.load_split` reads them)."""
    return _digit_pool(check_split(split), str(data_dir))


@functools.cache
def _digit_pool(split: str, data_dir: str) -> DigitPool:
    from training.data import load_split  # only a caller that renders digits needs torchvision and the files

    if split == "test":
        data = load_split(data_dir, train=False)
        indices = np.arange(len(data))
    else:
        data = load_split(data_dir, train=True)
        indices = (
            np.arange(TRAIN_DIGITS.start, TRAIN_DIGITS.stop)
            if split == "train"
            else np.arange(THRESHOLD_DIGITS.start, THRESHOLD_DIGITS.stop)
        )
    images = data.images.numpy()[indices]
    labels = data.labels.numpy()[indices]
    return DigitPool(split, images, labels, indices, "test" if split == "test" else "train")


def held_out_digits(pool: DigitPool, held_out: np.ndarray) -> DigitPool:
    """The digits of `pool` (drawn from the MNIST training file) whose training-set indices are in `held_out`: for a
    model trained with those images held out, renders of digits it has never seen in any form.

    Why: the `threshold` split's digits are MNIST training images, most of which a model trained on (the shipped one:
    all but 809 of its 10,000), so its renders understate how often the model misreads a digit new to it; the test
    split's are new to it, but are for reporting only. Renders of the held-out digits are new and fair to tune on.
    """
    if pool.mnist_file != "train":
        raise ValueError(
            f"the {pool.split} split's digits come from the MNIST {pool.mnist_file} file, not the training one"
        )
    keep = np.isin(pool.mnist_indices, held_out)
    return DigitPool(pool.split, pool.images[keep], pool.labels[keep], pool.mnist_indices[keep], pool.mnist_file)
