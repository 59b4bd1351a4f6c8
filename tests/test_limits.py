"""Body-size cap: 413 before the body is read (declared length) or once a streamed body passes the cap."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png

LIMIT = 10_000
CHUNK = 4096


class Stream:
    """An async body of `total` bytes in CHUNK-sized pieces that counts how many pieces were pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self):
        for start in range(0, self.total, CHUNK):
            self.pulled += 1
            yield b"\0" * min(CHUNK, self.total - start)


@pytest.fixture
async def client():
    app = create_app(Settings(max_body_bytes=LIMIT), model_factory=lambda _: StubModel())
    async with serve_in_process(app) as http:
        yield http


def assert_too_large(response) -> None:
    assert response.status_code == 413, response.text
    assert "MNIST_SERVE_MAX_BODY_BYTES" in response.json()["detail"]


async def test_a_body_within_the_limit_is_served(client):
    body = digit_png()
    assert len(body) < LIMIT
    assert (await client.post("/predict", content=body, headers={"Content-Type": "image/png"})).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
async def test_declared_oversized_body_is_refused_unread(client, path):
    body = Stream(100 * LIMIT)
    headers = {"Content-Type": "image/png", "Content-Length": str(body.total)}
    assert_too_large(await client.post(path, content=body, headers=headers))
    assert body.pulled <= 1  # the transport may prefetch one piece; the app read none


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/predict", "image/png"), ("/predict", "application/json"), ("/predict/batch", "application/json")],
)
async def test_streamed_oversized_body_is_cut_off_at_the_limit(client, path, content_type):
    body = Stream(100 * LIMIT)  # no Content-Length: sent chunked
    assert_too_large(await client.post(path, content=body, headers={"Content-Type": content_type}))
    assert body.pulled <= LIMIT // CHUNK + 2


async def test_streamed_oversized_multipart_is_cut_off(client):
    boundary = b"xyz"
    head = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'

    class Multipart(Stream):
        async def __aiter__(self):
            self.pulled += 1
            yield head
            async for piece in super().__aiter__():
                yield piece

    body = Multipart(100 * LIMIT)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    assert_too_large(await client.post("/predict/batch", content=body, headers=headers))
    assert body.pulled <= LIMIT // CHUNK + 3
