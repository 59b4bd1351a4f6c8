"""benchmarks.asgi_floor_app: the floor baseline does the bare server's work (decode, constant answer), says when
it is ready, and answers an unreadable body with a 400, over real ASGI calls."""

import io

import httpx
import pytest
from PIL import Image

from benchmarks.asgi_floor_app import app
from benchmarks.bare_app import ANSWER


def encoded(image_format: str) -> bytes:
    """A 28×28 digit-like image (a bright square on black, in MNIST format) in `image_format`."""
    image = Image.new("L", (28, 28), 0)
    image.paste(255, (10, 8, 18, 20))
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


@pytest.fixture
def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])  # mnist-serve's own PNG decoder, and Pillow's
async def test_an_image_gets_the_bare_servers_constant_answer(client, image_format):
    response = await client.post("/predict", content=encoded(image_format))
    assert response.status_code == 200
    assert response.json() == ANSWER
    assert int(response.headers["content-length"]) == len(response.content)


async def test_readyz_says_ready(client):
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_a_body_that_is_no_image_is_a_400(client):
    response = await client.post("/predict", content=b"not a png at all")
    assert response.status_code == 400
    assert response.json() == {"detail": "not an image"}
