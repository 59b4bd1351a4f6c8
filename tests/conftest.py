"""Shared fixtures (helpers are in tests/helpers.py): the real MNIST files, linked from ../shared and never copied
into the repo, and small checkpoints; CUDA-marked tests skip themselves without a GPU."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from app.testing import free_port, running_server
from tests.helpers import REPO, SHIPPED_CHECKPOINT, shared_mnist_raw
from training.data import RAW_FILES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip every test marked `cuda` when torch sees no CUDA GPU: the mark alone makes a test GPU-only."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable MNIST root whose MNIST/raw links to the real files (torchvision extracts next to them)."""
    source = shared_mnist_raw()
    if source is None:
        pytest.skip("MNIST .gz files not found (set MNIST_RAW_DIR or put them in ../shared/data/mnist/MNIST/raw)")
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
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


@dataclass(frozen=True)
class LiveService:
    """Where the shared real service answers: HTTP (base URL) and the Open Inference Protocol over gRPC."""

    url: str
    grpc_address: str


@pytest.fixture(scope="session")
def live_service() -> Iterator[LiveService]:
    """The real service as `make serve` runs it (gunicorn with one uvicorn worker, as in a pod; shipped model,
    default settings, gRPC on) shared by the tests that need one."""
    grpc_port = free_port()
    settings = {"grpc_port": str(grpc_port)}
    with running_server(server="gunicorn", settings=settings, env={"WEB_CONCURRENCY": "1"}, cwd=REPO) as server:
        yield LiveService(server.url, f"127.0.0.1:{grpc_port}")


@pytest.fixture(scope="session")
def live_server(live_service: LiveService) -> str:
    """The shared real service's base URL."""
    return live_service.url
