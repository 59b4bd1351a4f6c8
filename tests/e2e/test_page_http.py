"""The served container also serves the page at / with its files, and the model input the page shows."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

from tests.helpers import Digit


def test_the_page_and_everything_it_loads_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200, page.text
    assert "<canvas" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for reference in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        assert client.get(f"/{reference}").status_code == 200, reference


def test_predict_answers_the_model_input_the_page_shows(client, digits: list[Digit]) -> None:
    digit = digits[0]
    response = client.post("/predict?include_input=true", files={"file": ("digit.png", digit.png, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["digit"] == digit.label
    encoded = body["input_image"].removeprefix("data:image/png;base64,")
    seen = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert seen.size == (28, 28) and seen.mode == "L"
    assert seen.tobytes() == Image.open(io.BytesIO(digit.png)).tobytes()  # an MNIST digit is used as it is
