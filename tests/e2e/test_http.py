"""The served container, seen from a client: health, model card, every request form, batches and bad input."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import Digit


def _assert_all_right(digits: list[Digit], predicted: list[int]) -> None:
    """Fail with a readable list of the digits the server got wrong."""
    wrong = [
        f"test image {d.index}: label {d.label}, predicted {p}"
        for d, p in zip(digits, predicted, strict=True)
        if d.label != p
    ]
    assert not wrong, "\n".join(wrong)


def _check_prediction(body: dict) -> int:
    assert 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10
    assert abs(sum(body["probabilities"]) - 1.0) < 1e-3
    assert body["confidence"] == max(body["probabilities"])
    return body["digit"]


# The request forms a client can choose for POST /predict: the httpx keyword arguments that send one digit.
PREDICT_FORMS: dict[str, Callable[[Digit], dict[str, Any]]] = {
    "png-multipart": lambda d: {"files": {"file": (f"{d.index}.png", d.png, "image/png")}},
    "jpeg-raw-body": lambda d: {"content": d.jpeg, "headers": {"Content-Type": "image/jpeg"}},
    "png-json-base64": lambda d: {"json": {"image": base64.b64encode(d.png).decode()}},
}


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


@pytest.mark.parametrize("form", PREDICT_FORMS)
def test_predict_reads_real_digits(client, digits: list[Digit], form: str) -> None:
    predicted = []
    for digit in digits:
        response = client.post("/predict", **PREDICT_FORMS[form](digit))
        assert response.status_code == 200, response.text
        predicted.append(_check_prediction(response.json()))
    _assert_all_right(digits, predicted)


def test_predict_batch_multipart_answers_in_request_order(client, digits: list[Digit]) -> None:
    files = [("files", (f"{d.index}.png", d.png if d.index % 2 else d.jpeg, "image/png")) for d in digits]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert [item["index"] for item in items] == list(range(len(digits)))
    _assert_all_right(digits, [_check_prediction(item) for item in items])


def test_predict_batch_json_keeps_a_bad_item_to_itself(client, digits: list[Digit]) -> None:
    images = [base64.b64encode(d.png).decode() for d in digits[:4]]
    images.insert(2, base64.b64encode(b"not an image at all").decode())
    response = client.post("/predict/batch", json={"images": images})
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert 400 <= items[2]["status_code"] < 500 and items[2]["error"]
    good = [item for i, item in enumerate(items) if i != 2]
    _assert_all_right(digits[:4], [_check_prediction(item) for item in good])


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
