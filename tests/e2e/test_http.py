"""The served container, seen from a client: health, model card, every request form, batches and bad input."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import Digit, native_bf16_cpu


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


def test_the_image_serves_a_cpu_in_its_fastest_precision(client, server_url: str) -> None:
    """The image's `auto` precision on this machine's CPU: bf16 where the CPU has AVX512-BF16 or AMX, else int8
    convolutions on x86 (so the image's torch carries oneDNN's int8 convolution and its checkpoint the ranges it
    needs); read from /proc/cpuinfo here, which a server on loopback (a container on this machine) shares."""
    if urlsplit(server_url).hostname not in {"127.0.0.1", "localhost", "::1"}:
        pytest.skip("the server runs on another machine, whose CPU this one cannot read")
    if os.environ.get("MNIST_SERVE_PRECISION", "auto") != "auto":
        pytest.skip("MNIST_SERVE_PRECISION is set here, and compose passes it to the container")
    native = native_bf16_cpu()
    runtime = client.get("/model").json()["runtime"]
    if runtime["device"] != "cpu":
        pytest.skip(f"the container serves on {runtime['device']}")
    assert runtime["precision"] == ("bfloat16" if native else "int8")


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
