"""POST /predict and /predict/batch over HTTP (in-process): every body form, batching, per-request results,
back-pressure (503), timeouts (504) and failures that stay with their own request."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.config import Settings
from app.main import create_app
from app.schemas import BatchPrediction, Prediction, scores
from app.testing import StubModel, serve_in_process

FORMS = ("multipart", "raw", "json")


def drawing(seed: int, image_format: str = "PNG") -> bytes:
    """A distinct dark scribble on white paper per seed (enough for plumbing; the untrained model guesses)."""
    rng = random.Random(seed)
    image = Image.new("L", (64, 64), 255)
    points = [(rng.randint(12, 52), rng.randint(12, 52)) for _ in range(4)]
    ImageDraw.Draw(image).line(points, fill=0, width=5)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def post_image(client, data: bytes, form: str = "multipart"):
    if form == "multipart":
        return await client.post("/predict", files={"file": ("digit.png", data, "image/png")})
    if form == "raw":
        return await client.post("/predict", content=data, headers={"Content-Type": "image/png"})
    return await client.post("/predict", json={"image": b64(data)})


def without_none(item: dict) -> dict:
    return {key: value for key, value in item.items() if value is not None}


def check_prediction(body: dict) -> None:
    assert set(body) >= {"digit", "confidence", "probabilities", "is_digit"}
    assert body["is_digit"] is None  # the test checkpoint has no digit gate (tests/test_gate_serving.py has one)
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
    assert body["probabilities"][body["digit"]] == body["confidence"]


@pytest.fixture(params=["thread", "loop"])
def settings(untrained_checkpoint: Path, request) -> Settings:
    """The real model, its forward passes on a worker thread, then (second run) on the event loop."""
    return Settings(model_path=untrained_checkpoint, device="cpu", decode_threads=2, forward_on=request.param)


@pytest.fixture
async def client(settings):
    async with serve_in_process(create_app(settings)) as http:
        yield http


def test_the_digit_is_the_most_probable_one_and_a_tie_goes_to_the_lowest():
    assert scores([0.1, 0.2, 0.6, 0.1], True) == {
        "digit": 2,
        "confidence": 0.6,
        "probabilities": [0.1, 0.2, 0.6, 0.1],
        "is_digit": True,
    }
    assert scores([0.05, 0.4, 0.1, 0.4, 0.05], None)["digit"] == 1


@pytest.mark.parametrize("form", FORMS)
async def test_predict_answers_each_body_form(client, form):
    response = await post_image(client, drawing(1), form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    check_prediction(body)
    assert body["model"]["name"] == "pytorch-examples-mnist-cnn"
    assert len(body["model"]["version"]) == 12
    # exactly what /docs promises (`input_image` only when asked for)
    shown = Prediction.model_validate(body).model_dump(mode="json", exclude_none=True)
    assert shown | {"is_digit": None} == body


async def test_batch_answers_have_the_documented_shape(client):
    response = await client.post("/predict/batch", json={"images": [b64(drawing(1)), "%%%"]})
    assert response.status_code == 200, response.text
    body = response.json()
    shown = BatchPrediction.model_validate(body).model_dump(mode="json", exclude_none=True)
    assert shown == {**body, "predictions": [without_none(item) for item in body["predictions"]]}
    assert set(body["predictions"][0]) == {"index", "digit", "confidence", "probabilities", "is_digit"}
    assert set(body["predictions"][1]) == {"index", "status_code", "error"}


async def test_the_three_forms_give_the_same_answer(client):
    answers = [(await post_image(client, drawing(2), form)).json()["probabilities"] for form in FORMS]
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "image/jpeg"])
async def test_raw_image_with_a_wrong_or_missing_content_type_is_sniffed(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/predict", content=drawing(3), headers=headers)
    assert response.status_code == 200, response.text


async def test_json_accepts_data_urls_and_wrapped_base64(client):
    encoded = b64(drawing(4))
    expected = (await post_image(client, drawing(4), "raw")).json()["probabilities"]
    for image in (
        f"data:image/png;base64,{encoded}",
        "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
    ):
        response = await client.post("/predict", json={"image": image})
        assert response.status_code == 200, response.text
        assert response.json()["probabilities"] == expected


@pytest.mark.parametrize("form", ["multipart", "json"])
async def test_batch_answers_in_request_order(client, form):
    images = [drawing(seed, "PNG" if seed % 2 else "JPEG") for seed in range(5)]
    singles = [(await post_image(client, image, "raw")).json()["probabilities"] for image in images]
    if form == "multipart":
        files = [("files", (f"{i}.img", image, "application/octet-stream")) for i, image in enumerate(images)]
        response = await client.post("/predict/batch", files=files)
    else:
        response = await client.post("/predict/batch", json={"images": [b64(image) for image in images]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "pytorch-examples-mnist-cnn"
    assert [item["index"] for item in body["predictions"]] == list(range(5))
    for item, expected in zip(body["predictions"], singles, strict=True):
        check_prediction(item)
        assert item["probabilities"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("form", ["multipart", "json"])
async def test_a_bad_image_in_a_batch_fails_only_its_own_entry(client, form):
    bad = {1: b"definitely not an image", 2: drawing(5)[:60], 3: b"\x89PNG\r\n\x1a\n truncated"}
    images = [bad.get(i, drawing(i)) for i in range(5)]
    if form == "multipart":
        response = await client.post("/predict/batch", files=[("files", ("x", image, "image/png")) for image in images])
    else:
        payload = [b64(image) for image in images] + ["%%% not base64 %%%"]
        response = await client.post("/predict/batch", json={"images": payload})
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    errors = {item["index"]: item for item in items if "error" in item}
    assert set(errors) == ({1, 2, 3} if form == "multipart" else {1, 2, 3, 5})
    for item in errors.values():
        assert 400 <= item["status_code"] < 500 and item["error"]
    assert errors[1]["status_code"] == 415
    for index in (0, 4):
        check_prediction(items[index])


async def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_answer(untrained_checkpoint):
    settings = Settings(model_path=untrained_checkpoint, device="cpu", max_batch_wait_ms=500, decode_threads=2)
    app = create_app(settings)
    images = [drawing(100 + i) for i in range(12)]
    async with serve_in_process(app) as client:
        expected = [(await post_image(client, image, "raw")).json()["probabilities"] for image in images]
        registry = app.state.metrics.registry
        passes_before = registry.get_sample_value("mnist_serve_batch_size_count")
        responses = await asyncio.gather(*(post_image(client, image, FORMS[i % 3]) for i, image in enumerate(images)))
        passes = registry.get_sample_value("mnist_serve_batch_size_count") - passes_before
    assert all(response.status_code == 200 for response in responses)
    for response, probabilities in zip(responses, expected, strict=True):
        assert response.json()["probabilities"] == pytest.approx(probabilities, abs=1e-5)
    assert passes < len(images)


async def test_a_bad_request_among_concurrent_ones_fails_alone(client):
    bodies = [drawing(i) for i in range(7)]
    bodies[3] = b"GIF89a but not really"
    responses = await asyncio.gather(*(post_image(client, body, "raw") for body in bodies))
    statuses = [response.status_code for response in responses]
    assert statuses[:3] == statuses[4:] == [200, 200, 200]
    assert 400 <= statuses[3] < 500 and responses[3].json()["detail"]


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()  # never leave the worker blocked


async def test_full_queue_answers_503_with_retry_after(gate):
    model = StubModel(gate=gate)
    app = create_app(Settings(max_batch_size=1, max_queue_size=2, max_batch_images=2), model_factory=lambda _: model)
    async with serve_in_process(app) as client:
        first = asyncio.create_task(post_image(client, drawing(0)))
        await asyncio.to_thread(model.entered.wait, 5)
        queued = [asyncio.create_task(post_image(client, drawing(i))) for i in (1, 2)]
        while app.state.metrics.registry.get_sample_value("mnist_serve_queue_depth") < 2:
            await asyncio.sleep(0.005)
        refused = await post_image(client, drawing(3))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert "queue is full" in refused.json()["detail"]
        gate.set()
        assert [(await task).status_code for task in (first, *queued)] == [200, 200, 200]


async def test_a_request_waiting_past_the_timeout_gets_504(gate):
    model = StubModel(gate=gate)
    app = create_app(Settings(request_timeout_s=0.2), model_factory=lambda _: model)
    async with serve_in_process(app) as client:
        response = await post_image(client, drawing(0))
        assert response.status_code == 504
        assert "MNIST_SERVE_REQUEST_TIMEOUT_S" in response.json()["detail"]
        gate.set()
        assert (await post_image(client, drawing(1))).status_code == 200


async def test_a_failing_forward_pass_is_a_logged_500_and_the_server_goes_on(caplog):
    model = StubModel(fail_predict=True)
    app = create_app(Settings(), model_factory=lambda _: model)
    async with serve_in_process(app, raise_app_exceptions=False) as client:
        response = await post_image(client, drawing(0))
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error; the server log has the details"}
        model.fail_predict = False
        assert (await post_image(client, drawing(1))).status_code == 200
    assert "unhandled RuntimeError on POST /predict" in caplog.text


async def test_requests_before_readiness_wait_for_the_warm_up(gate):
    model = StubModel(warm_up_gate=gate)
    app = create_app(Settings(), model_factory=lambda _: model)
    async with serve_in_process(app, wait_ready=False) as client:
        pending = asyncio.create_task(post_image(client, drawing(0)))
        await asyncio.sleep(0.05)
        assert not pending.done()
        gate.set()
        assert (await pending).status_code == 200


async def test_the_shipped_model_reads_real_digits(mnist_root, shipped_checkpoint):
    from training.data import load_split

    split = load_split(mnist_root, train=False)  # extracts the linked .gz files; nothing is downloaded
    pngs, labels = [], []
    for index in range(20):
        buffer = io.BytesIO()
        Image.fromarray(split.images[index].numpy(), mode="L").save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
        labels.append(int(split.labels[index]))
    async with serve_in_process(create_app(Settings(device="cpu", model_path=shipped_checkpoint))) as client:
        single = await asyncio.gather(*(post_image(client, png, FORMS[i % 3]) for i, png in enumerate(pngs)))
        batch = await client.post("/predict/batch", json={"images": [b64(png) for png in pngs]})
    assert [response.json()["digit"] for response in single] == labels
    assert [item["digit"] for item in batch.json()["predictions"]] == labels
