"""Rendered uploads as training data: digits written the way people write them, and non-digits to be unsure about.

`python -m benchmarks.renders.export --split train` renders digits (pen, pencil, squared paper, tilted photos,
chalk, ...) and non-digits (letters, symbols, shapes, scribbles, hatching, numbers, text), runs each through the
service's own preprocessing and saves the 28×28 results in an `.npz`. Training reads only that file (never the
service's code): the digits join the MNIST training images, so the network learns what preprocessing makes of a
real upload; the non-digits feed outlier exposure (`training.loop.uniform_cross_entropy`), so it learns to spread
its probabilities over the ten classes on what is not a digit. The renders of the `train` split come from MNIST
training images 0–49,999 only, and the file is read with `allow_pickle=False`.

Held-out validation images are drawn from all 60,000 training images, so some of them are the source of renders.
Those renders must not be trained on, or the validation accuracy (by which recipes are chosen) would measure
digits the network has seen, drawn differently: the file's `mnist_index` says each digit's source, and
`RenderedSet.without` drops the renders of the held-out ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.data import DataError, Split

NOT_A_DIGIT = -1
"""The `label` of a non-digit in the exported file."""


@dataclass(frozen=True)
class RenderedSet:
    """The digits (with their labels) and the non-digits of one or more exported files, and what those files were."""

    digits: Split
    outliers: torch.Tensor  # N×28×28 uint8
    files: tuple[tuple[str, str], ...]  # (path, SHA-256) of each file read, in order
    sources: torch.Tensor | None = None  # each digit's position in MNIST's training file; None: a file lacks it
    dropped: int = 0  # digits left out by `without`

    def describe(self) -> dict[str, object]:
        """What the checkpoint records about the files."""
        return {
            "files": [{"path": path, "sha256": sha256} for path, sha256 in self.files],
            "digits": len(self.digits),
            "outliers": len(self.outliers),
            "held_out_sources_dropped": self.dropped,
        }

    def without(self, held_out: torch.Tensor) -> RenderedSet:
        """The set without the digits rendered from the training images at `held_out` (validation images).

        DataError when that cannot be told: a file exported before `mnist_index` was written (export it again).
        """
        if len(held_out) == 0:
            return self
        if self.sources is None:
            raise DataError(
                "the rendered file has no `mnist_index`, so renders of held-out validation images cannot be left "
                "out; export it again (python -m benchmarks.renders.export) or train with --val-samples 0"
            )
        keep = ~torch.isin(self.sources, held_out)
        digits = Split(self.digits.images[keep], self.digits.labels[keep])
        return dataclasses.replace(
            self, digits=digits, sources=self.sources[keep], dropped=self.dropped + int((~keep).sum())
        )


def load_rendered(*paths: Path) -> RenderedSet:
    """Read one or more exported `.npz` files (`pixels` N×28×28 uint8, `label` N ints, -1 for a non-digit) as one set,
    in the order given; DataError if one is not such a file."""
    parts = [_load_file(path) for path in paths]
    sources = [part.sources for part in parts]
    return RenderedSet(
        digits=Split(
            torch.cat([part.digits.images for part in parts]), torch.cat([part.digits.labels for part in parts])
        ),
        outliers=torch.cat([part.outliers for part in parts]),
        files=tuple(file for part in parts for file in part.files),
        sources=None if any(s is None for s in sources) else torch.cat([s for s in sources if s is not None]),
    )


def _load_file(path: Path) -> RenderedSet:
    """One exported file, checked (see `load_rendered`)."""
    try:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            pixels, labels = data["pixels"], data["label"]
            sources = data["mnist_index"] if "mnist_index" in data.files else None
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read rendered uploads from {path}: {exc}") from exc
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != (28, 28):
        raise DataError(f"{path}: `pixels` must be N×28×28 uint8, got {pixels.dtype} {pixels.shape}")
    if labels.shape != (len(pixels),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: `label` must hold one integer per image, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < NOT_A_DIGIT or labels.max() > 9):
        raise DataError(f"{path}: labels must be 0–9, or {NOT_A_DIGIT} for a non-digit")
    if sources is not None and (sources.shape != labels.shape or not np.issubdtype(sources.dtype, np.integer)):
        raise DataError(f"{path}: `mnist_index` must hold one integer per image, got {sources.dtype} {sources.shape}")
    digits = labels >= 0
    return RenderedSet(
        digits=Split(torch.from_numpy(pixels[digits].copy()), torch.from_numpy(labels[digits].astype(np.int64))),
        outliers=torch.from_numpy(pixels[~digits].copy()),
        files=((str(path), hashlib.sha256(raw).hexdigest()),),
        sources=None if sources is None else torch.from_numpy(sources[digits].astype(np.int64)),
    )
