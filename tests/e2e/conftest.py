"""Fixtures for the end-to-end tests: a running server at $MNIST_SERVE_E2E_URL and real MNIST test digits.

Without MNIST_SERVE_E2E_URL every test here is skipped, so the normal `make test` run collects them at no
cost. `.ci/docker-e2e.sh` sets it, and the container's gRPC address, after starting the container:
    MNIST_SERVE_E2E_URL=http://127.0.0.1:8000 MNIST_SERVE_E2E_GRPC=127.0.0.1:8081 pytest tests/e2e
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Digit

E2E_URL_ENV = "MNIST_SERVE_E2E_URL"
E2E_GRPC_ENV = "MNIST_SERVE_E2E_GRPC"
DIGITS_PER_TEST = 20
"""The first 20 MNIST test images: every class appears, and a trained model gets all of them right."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/e2e as `e2e`, and skip it unless a server URL is given."""
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"set {E2E_URL_ENV} to a running server, e.g. http://127.0.0.1:8000")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)
            if not os.environ.get(E2E_URL_ENV):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def server_url() -> str:
    """Base URL of the server under test (loopback only, in CI)."""
    url = os.environ.get(E2E_URL_ENV)
    if not url:
        pytest.skip(f"{E2E_URL_ENV} is not set")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def grpc_address() -> str:
    """host:port of the server's Open Inference Protocol over gRPC (the image serves it on 8081)."""
    address = os.environ.get(E2E_GRPC_ENV)
    if not address:
        pytest.skip(f"{E2E_GRPC_ENV} is not set")
    return address


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[object]:
    """An HTTP client for the server, with a timeout that fits a busy 2-core CI machine."""
    import httpx

    with httpx.Client(base_url=server_url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def digits(mnist_root: Path) -> list[Digit]:
    """The first DIGITS_PER_TEST MNIST test digits as 28×28 grayscale PNG and JPEG (white ink on black)."""
    from PIL import Image

    from training.data import load_split

    split = load_split(mnist_root, train=False)  # extracts the linked .gz files; no network
    result = []
    for index in range(DIGITS_PER_TEST):
        image = Image.fromarray(split.images[index].numpy(), mode="L")
        png, jpeg = io.BytesIO(), io.BytesIO()
        image.save(png, format="PNG")
        image.save(jpeg, format="JPEG", quality=95)
        result.append(Digit(index, int(split.labels[index]), png.getvalue(), jpeg.getvalue()))
    return result
