"""MNIST as whole in-memory uint8 tensors, read by torchvision from the canonical IDX files.

Holding the 47 MB training set as one tensor lets training index, augment and normalise whole batches on the
training device instead of running PIL per image (the tutorial's bottleneck on CPU).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torchvision.datasets import MNIST

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MNIST_DATA_DIR"
RAW_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class DataError(RuntimeError):
    """MNIST could not be found or fetched; the message says where to put which files."""


@dataclass(frozen=True)
class Split:
    """One MNIST split: `images` is N×28×28 uint8 (0 = background), `labels` is N int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def sha256(self) -> str:
        """Checksum of the pixels and labels, independent of how the files were compressed."""
        digest = hashlib.sha256(self.images.contiguous().numpy().tobytes())
        digest.update(self.labels.contiguous().numpy().tobytes())
        return digest.hexdigest()


def default_data_dir() -> Path:
    """`$MNIST_DATA_DIR` if set, else `data/` in the working directory."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def load_split(root: str | Path, train: bool, download: bool = True) -> Split:
    """Load one split from `root/MNIST/raw`, extracting the `.gz` files there or downloading them when online."""
    root = Path(root)
    try:
        dataset = MNIST(str(root), train=train, download=download)
    except (RuntimeError, OSError) as exc:  # torchvision raises RuntimeError when every mirror fails
        raise DataError(missing_data_message(root, exc)) from exc
    return Split(images=dataset.data.contiguous(), labels=dataset.targets.long().contiguous())


def missing_data_message(root: Path, cause: Exception | None = None) -> str:
    """Explain where MNIST must be for an offline machine."""
    raw = root / "MNIST" / "raw"
    files = "\n".join(f"  {raw / name}" for name in RAW_FILES)
    reason = f" ({cause})" if cause else ""
    return (
        f"MNIST is not in {root} and could not be downloaded{reason}.\n"
        f"On an offline machine, copy the four canonical files to:\n{files}\n"
        f"or pass --data-dir (or set {DATA_DIR_ENV}) to a folder that has them under MNIST/raw/."
    )


def holdout_indices(total: int, count: int, seed: int) -> torch.Tensor:
    """The `count` training-image indices held out for validation (sorted): a seeded draw without replacement.

    Everything that needs the validation images again (calibration, threshold choice, benchmarks) rebuilds them
    from the (total, count, seed) a checkpoint records; `indices_sha256` checks that the rebuild matches.
    """
    if not 0 <= count < total:
        raise ValueError(f"--val-samples must be between 0 and {total - 1} (the training set has {total}), got {count}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return order[:count].sort().values


def indices_sha256(indices: torch.Tensor) -> str:
    """Checksum of an index list (as int64), to verify that a split was rebuilt exactly."""
    return hashlib.sha256(indices.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


def recorded_holdout(record: Mapping[str, object]) -> torch.Tensor:
    """The held-out training images a checkpoint records (`ModelMetadata.validation`: total, count, seed and the
    indices' SHA-256), rebuilt; DataError when it records none or the rebuild does not match its checksum.

    Why: whatever must be measured on digits a model never trained on (the style benchmark's renders of them, say)
    needs exactly that model's held-out images, and the checksum proves the rebuild is the draw it was trained with.
    """
    try:
        total, count, seed = (int(cast(int, record[key])) for key in ("total", "count", "seed"))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError("the checkpoint records no held-out training images (trained with --val-samples 0?)") from exc
    indices = holdout_indices(total, count, seed)
    if indices_sha256(indices) != record.get("indices_sha256"):
        raise DataError("the held-out images rebuilt from the checkpoint's record do not match its checksum")
    return indices


def split_validation(train: Split, held_out: torch.Tensor) -> tuple[Split, Split]:
    """(the images left for training, in their original order; the images at `held_out`) of the training split."""
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[held_out] = False
    return (
        Split(train.images[keep], train.labels[keep]),
        Split(train.images[held_out], train.labels[held_out]),
    )
