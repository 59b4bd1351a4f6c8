"""`?include_input=true` on /predict and /predict/batch: the 28×28 image the model saw, as a PNG data URL.

The expected pixels are computed here from the upload with `app.preprocess.to_mnist_pixels` (the preprocessing
the service documents), never taken from the answer being checked.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.preprocess import to_mnist_pixels
from app.testing import serve_in_process
from tests.helpers import REPO, digit_png

PREFIX = "data:image/png;base64,"
UPLOADS = {
    "drawing": digit_png(),
    "photo": (REPO / "examples/photo.jpg").read_bytes(),
    "canvas": (REPO / "examples/canvas.png").read_bytes(),
}


def seen_pixels(data_url: str) -> np.ndarray:
    """Decode the answer's `input_image` the way a browser would: a data URL holding a PNG."""
    assert data_url.startswith(PREFIX), data_url[:40]
    image = Image.open(io.BytesIO(base64.b64decode(data_url.removeprefix(PREFIX), validate=True)))
    assert image.format == "PNG"
    assert image.mode == "L"
    return np.asarray(image)


@pytest.fixture
async def client(untrained_checkpoint: Path):
    settings = Settings(model_path=untrained_checkpoint, device="cpu", decode_threads=2)
    async with serve_in_process(create_app(settings)) as http:
        yield http


@pytest.mark.parametrize("name", sorted(UPLOADS))
async def test_predict_answers_the_model_input_when_asked(client, name):
    upload = UPLOADS[name]
    response = await client.post("/predict?include_input=true", content=upload)
    assert response.status_code == 200, response.text
    pixels = seen_pixels(response.json()["input_image"])
    assert pixels.shape == (28, 28)
    np.testing.assert_array_equal(pixels, to_mnist_pixels(upload))


async def test_every_body_form_can_ask_for_the_model_input(client):
    upload, expected = UPLOADS["drawing"], to_mnist_pixels(UPLOADS["drawing"])
    multipart = await client.post("/predict", params={"include_input": "1"}, files={"file": ("d.png", upload)})
    json = await client.post("/predict?include_input=true", json={"image": base64.b64encode(upload).decode()})
    for response in (multipart, json):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(seen_pixels(response.json()["input_image"]), expected)


@pytest.mark.parametrize("query", ["", "?include_input=false", "?include_input=0"])
async def test_the_model_input_is_absent_unless_asked_for(client, query):
    response = await client.post(f"/predict{query}", content=UPLOADS["drawing"])
    assert response.status_code == 200, response.text
    assert "input_image" not in response.json()


async def test_a_bad_include_input_value_is_a_422_naming_the_parameter(client):
    response = await client.post("/predict?include_input=maybe", content=UPLOADS["drawing"])
    assert response.status_code == 422
    assert "include_input" in str(response.json()["detail"])


async def test_the_model_input_can_be_sent_back_and_gets_the_same_answer(client):
    first = (await client.post("/predict?include_input=true", content=UPLOADS["photo"])).json()
    again = await client.post("/predict", json={"image": first["input_image"]})  # data URLs are accepted
    assert again.status_code == 200, again.text
    assert again.json()["probabilities"] == pytest.approx(first["probabilities"], abs=1e-6)


async def test_batch_items_carry_their_own_model_input_and_errors_none(client):
    images = [UPLOADS["drawing"], b"not an image", UPLOADS["photo"]]
    files = [("files", (f"{i}.bin", image, "application/octet-stream")) for i, image in enumerate(images)]
    response = await client.post("/predict/batch?include_input=true", files=files)
    assert response.status_code == 200, response.text
    good, bad, photo = response.json()["predictions"]
    np.testing.assert_array_equal(seen_pixels(good["input_image"]), to_mnist_pixels(images[0]))
    np.testing.assert_array_equal(seen_pixels(photo["input_image"]), to_mnist_pixels(images[2]))
    assert bad["status_code"] == 415
    assert "input_image" not in bad

    plain = await client.post("/predict/batch", files=files)
    assert all("input_image" not in item for item in plain.json()["predictions"])


async def test_openapi_documents_the_parameter_the_field_and_an_example(client):
    spec = (await client.get("/openapi.json")).json()
    for path in ("/predict", "/predict/batch"):
        [parameter] = [p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "include_input"]
        assert parameter["in"] == "query"
        assert parameter["schema"]["type"] == "boolean"
        assert parameter["schema"]["default"] is False
        assert "input_image" in parameter["description"]
    field = spec["components"]["schemas"]["Prediction"]["properties"]["input_image"]
    assert "include_input" in field["description"]
    [example] = spec["components"]["schemas"]["Prediction"]["examples"]
    upload = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]["image"]
    np.testing.assert_array_equal(seen_pixels(example["input_image"]), to_mnist_pixels(base64.b64decode(upload)))
