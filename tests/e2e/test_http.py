"""The served container, seen from a client: health, model card, every request form, batches and bad input."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Digit


def _wrong(digits: list[Digit], predicted: list[int]) -> list[str]:
    """Readable list of the digits the server got wrong (empty when all are right)."""
    return [
        f"test image {d.index}: label {d.label}, predicted {p}"
        for d, p in zip(digits, predicted, strict=True)
        if d.label != p
    ]


def _check_prediction(body: dict) -> int:
    assert 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10
    assert abs(sum(body["probabilities"]) - 1.0) < 1e-3
    assert body["confidence"] == max(body["probabilities"])
    return body["digit"]


def test_healthz_and_readyz_answer_200(client) -> None:
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_model_describes_the_shipped_checkpoint(client) -> None:
    response = client.get("/model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["metadata"]["architecture"]
    assert body["metadata"]["epochs"] >= 1, "the image serves an untrained checkpoint"


def test_predict_png_multipart_reads_real_digits(client, digits: list[Digit]) -> None:
    predicted = []
    for digit in digits:
        response = client.post("/predict", files={"file": (f"{digit.index}.png", digit.png, "image/png")})
        assert response.status_code == 200, response.text
        predicted.append(_check_prediction(response.json()))
    wrong = _wrong(digits, predicted)
    assert not wrong, "\n".join(wrong)


def test_predict_jpeg_raw_body_reads_real_digits(client, digits: list[Digit]) -> None:
    predicted = []
    for digit in digits:
        response = client.post("/predict", content=digit.jpeg, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text
        predicted.append(_check_prediction(response.json()))
    wrong = _wrong(digits, predicted)
    assert not wrong, "\n".join(wrong)


def test_predict_json_base64_reads_real_digits(client, digits: list[Digit]) -> None:
    predicted = []
    for digit in digits:
        response = client.post("/predict", json={"image": base64.b64encode(digit.png).decode()})
        assert response.status_code == 200, response.text
        predicted.append(_check_prediction(response.json()))
    wrong = _wrong(digits, predicted)
    assert not wrong, "\n".join(wrong)


def test_predict_batch_multipart_answers_in_request_order(client, digits: list[Digit]) -> None:
    files = [("files", (f"{d.index}.png", d.png if d.index % 2 else d.jpeg, "image/png")) for d in digits]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert [item["index"] for item in items] == list(range(len(digits)))
    wrong = _wrong(digits, [_check_prediction(item) for item in items])
    assert not wrong, "\n".join(wrong)


def test_predict_batch_json_keeps_a_bad_item_to_itself(client, digits: list[Digit]) -> None:
    images = [base64.b64encode(d.png).decode() for d in digits[:4]]
    images.insert(2, base64.b64encode(b"not an image at all").decode())
    response = client.post("/predict/batch", json={"images": images})
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert 400 <= items[2]["status_code"] < 500 and items[2]["error"]
    good = [item for i, item in enumerate(items) if i != 2]
    wrong = _wrong(digits[:4], [_check_prediction(item) for item in good])
    assert not wrong, "\n".join(wrong)


def test_predict_non_image_is_a_json_4xx(client) -> None:
    for body, content_type in ((b"hello, not an image", "text/plain"), (b"\x89PNG truncated", "image/png")):
        response = client.post("/predict", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, (content_type, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["detail"]


def test_metrics_are_prometheus_text(client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "# TYPE" in response.text
