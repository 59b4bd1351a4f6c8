"""Shared fixtures: the real MNIST files (linked from ../shared, never copied into the repo) and small checkpoints."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CHECKPOINT = REPO / "models" / "mnist_cnn.safetensors"
RAW_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def shared_mnist_raw() -> Path | None:
    """The canonical MNIST .gz files: $MNIST_RAW_DIR, else ../shared/data/mnist/MNIST/raw next to the repo."""
    candidates = [os.environ.get("MNIST_RAW_DIR"), REPO.parent / "shared/data/mnist/MNIST/raw", REPO / "data/MNIST/raw"]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in RAW_NAMES):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable MNIST root whose MNIST/raw links to the real files (torchvision extracts next to them)."""
    source = shared_mnist_raw()
    if source is None:
        pytest.skip("MNIST .gz files not found (set MNIST_RAW_DIR or put them in ../shared/data/mnist/MNIST/raw)")
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_NAMES:
        (raw / name).symlink_to(source / name)
    return root


@pytest.fixture(scope="session")
def shipped_checkpoint() -> Path:
    """The committed checkpoint. Missing, it fails the tests that need it: a broken checkout must not pass as skips."""
    if not SHIPPED_CHECKPOINT.is_file():
        pytest.fail(
            f"{SHIPPED_CHECKPOINT} is missing. It is committed with the code: restore it with "
            "`git checkout -- models/mnist_cnn.safetensors`, or train a new one with `make train`.",
            pytrace=False,
        )
    return SHIPPED_CHECKPOINT


@pytest.fixture
def untrained_checkpoint(tmp_path: Path) -> Path:
    """A valid checkpoint with random weights, for tests of loading and plumbing, not of accuracy."""
    from mnist_model import ModelMetadata, Net, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "untrained.safetensors"
    save_checkpoint(path, Net(), ModelMetadata(epochs=0, command="test fixture"))
    return path


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def digit_png() -> bytes:
    """A hand-drawn-looking 7 (black stroke on white, 64×64 PNG): a valid upload for plumbing tests."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(image).line([(16, 16), (48, 16), (24, 56)], 0, 5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    """A loopback port nobody listens on (the OS picks it), for tests that start a real server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
