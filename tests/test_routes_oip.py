"""Open Inference Protocol v2 routes over HTTP (in-process): metadata, health, inference through both inputs and
both encodings (the same answers as /predict), requested outputs, and every error in its `{"error"}` shape,
including back-pressure (503), readiness (503) and timeouts (504) with gated stub models."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image

from app import __version__
from app.config import DEFAULT_MODEL_PATH, Settings
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png

INFER = "/v2/models/mnist/infer"


def mnist_format(seed: int) -> np.ndarray:
    """A 28×28 white-on-black stroke inside a black ring: MNIST format, so preprocessing passes it through."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((28, 28), np.uint8)
    top, left = rng.integers(5, 12, 2)
    pixels[top : top + 12, left : left + 3] = 255
    pixels[top : top + 3, left : left + 10] = rng.integers(120, 256)
    return pixels


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def binary_request(
    name: str, array: np.ndarray, outputs: list[triton.InferRequestedOutput] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """httpx keyword arguments for the body `tritonclient.http` sends (binary tensor data)."""
    datatype = "BYTES" if array.dtype == np.object_ else "UINT8"
    tensor = triton.InferInput(name, list(array.shape), datatype).set_data_from_numpy(array, binary_data=True)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs, **kwargs)
    return {"content": body, "headers": {"Inference-Header-Content-Length": str(json_size)}}


def json_input(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"json": {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}}


def pixels_json(pixels: np.ndarray) -> dict[str, Any]:
    return json_input("pixels", "UINT8", list(pixels.shape), pixels.reshape(-1).tolist())


def images_json(files: list[bytes]) -> dict[str, Any]:
    return json_input("images", "BYTES", [len(files)], [base64.b64encode(data).decode() for data in files])


def read(response: httpx.Response) -> triton.InferResult:
    """The answer as the real client reads it."""
    assert response.status_code == 200, response.text
    length = response.headers.get("Inference-Header-Content-Length")
    return triton.InferenceServerClient.parse_response_body(response.content, header_length=length and int(length))


def error(response: httpx.Response, status: int) -> str:
    """The message of an OIP error answer, after checking its status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.fixture
def settings(untrained_checkpoint) -> Settings:
    return Settings(model_path=untrained_checkpoint, device="cpu", decode_threads=2, max_batch_images=8)


@pytest.fixture
async def client(settings):
    async with serve_in_process(create_app(settings)) as http:
        yield http


async def test_server_metadata_names_the_binary_extension(client):
    response = await client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {
        "name": "mnist-serve",
        "version": __version__,
        "extensions": ["binary_tensor_data", "classification", "model_configuration"],
    }


async def test_health_and_model_ready_once_warm(client):
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get("/v2/models/mnist/ready")).json() == {"name": "mnist", "ready": True}
    version = (await client.get("/model")).json()["version"]
    assert (await client.get(f"/v2/models/mnist/versions/{version}/ready")).status_code == 200


async def test_model_metadata_lists_the_signature_and_the_checkpoint_version(client):
    version = (await client.get("/model")).json()["version"]
    response = await client.get("/v2/models/mnist")
    assert response.status_code == 200
    assert response.json() == {
        "name": "mnist",
        "versions": [version],
        "platform": "pytorch",
        "inputs": [
            {"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28]},
            {"name": "images", "datatype": "BYTES", "shape": [-1, 1]},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert (await client.get(f"/v2/models/mnist/versions/{version}")).json() == response.json()


async def test_pixels_images_and_predict_batch_give_the_same_answers(client):
    pixels = np.stack([mnist_format(seed) for seed in range(5)])
    files = [png(image) for image in pixels]
    native = await client.post(
        "/predict/batch", files=[("files", (f"{i}.png", f, "image/png")) for i, f in enumerate(files)]
    )
    expected = np.array([item["probabilities"] for item in native.json()["predictions"]], np.float32)
    answers = {
        "pixels binary": read(await client.post(INFER, **binary_request("pixels", pixels))),
        "pixels json": read(await client.post(INFER, **pixels_json(pixels))),
        "images binary": read(await client.post(INFER, **binary_request("images", np.array(files, np.object_)))),
        "images json": read(await client.post(INFER, **images_json(files))),
        "images binary, one file per row [5, 1]": read(
            await client.post(INFER, **binary_request("images", np.array(files, np.object_).reshape(5, 1)))
        ),
    }
    for kind, result in answers.items():
        probabilities = result.as_numpy("probabilities")
        assert probabilities.dtype == np.float32 and probabilities.shape == (5, 10), kind
        np.testing.assert_allclose(probabilities, expected, atol=1e-6, err_msg=kind)
        np.testing.assert_array_equal(result.as_numpy("digit"), expected.argmax(axis=1), err_msg=kind)
        assert result.as_numpy("digit").dtype == np.int64


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
async def test_classification_answers_the_top_classes_of_probabilities(client, binary):
    """Triton's classification extension, as `tritonclient`'s `class_count` asks for it: BYTES [N, K] of
    `value:digit`, highest first, the same scores as the plain tensor."""
    pixels = np.stack([mnist_format(seed) for seed in range(3)])
    plain = read(await client.post(INFER, **binary_request("pixels", pixels))).as_numpy("probabilities")
    top = triton.InferRequestedOutput("probabilities", binary_data=binary, class_count=3)
    result = read(
        await client.post(INFER, **binary_request("pixels", pixels, [top, triton.InferRequestedOutput("digit")]))
    )
    output = result.get_output("probabilities")
    assert (output["datatype"], output["shape"]) == ("BYTES", [3, 3])
    for row, scores, digit in zip(result.as_numpy("probabilities"), plain, result.as_numpy("digit"), strict=True):
        pairs = [(item if isinstance(item, bytes) else item.encode()).decode().split(":") for item in row]
        values, indices = [float(value) for value, _ in pairs], [int(index) for _, index in pairs]
        assert all(len(value.split(".")[1]) == 6 for value, _ in pairs)  # C's %f
        assert indices[0] == digit and values == sorted(values, reverse=True) and len(set(indices)) == 3
        np.testing.assert_allclose(values, scores[indices], atol=1e-6)
        assert min(values) >= np.delete(scores, indices).max() - 1e-6  # no class left out scores higher


async def test_requested_outputs_come_in_the_order_asked_each_in_its_encoding(client):
    pixels = mnist_format(7)[None]
    outputs = [triton.InferRequestedOutput("digit", binary_data=False), triton.InferRequestedOutput("probabilities")]
    response = await client.post(INFER, **binary_request("pixels", pixels, outputs, request_id="req-9"))
    result = read(response)
    body = result.get_response()
    assert body["id"] == "req-9" and body["model_name"] == "mnist"
    assert [output["name"] for output in body["outputs"]] == ["digit", "probabilities"]
    assert body["outputs"][0]["data"] == [int(result.as_numpy("probabilities").argmax())]
    assert body["outputs"][1]["parameters"]["binary_data_size"] == 40
    only = read(await client.post(INFER, **binary_request("pixels", pixels, [triton.InferRequestedOutput("digit")])))
    assert only.as_numpy("probabilities") is None and only.as_numpy("digit").shape == (1,)


async def test_a_json_request_gets_a_json_answer_and_the_versioned_path_works(client):
    version = (await client.get("/model")).json()["version"]
    response = await client.post(f"/v2/models/mnist/versions/{version}/infer", **pixels_json(mnist_format(1)[None]))
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    assert response.json()["model_version"] == version
    assert [output["shape"] for output in response.json()["outputs"]] == [[1, 10], [1]]


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        (json_input("image", "BYTES", [1], ["aGk="]), "unknown input 'image': this model takes 'pixels'"),
        (json_input("pixels", "FP32", [1, 28, 28], [0.0] * 784), "input 'pixels': datatype FP32 is not UINT8"),
        (json_input("images", "STRING", [1], ["aGk="]), "unknown or unsupported datatype 'STRING'"),
        (
            json_input("pixels", "UINT8", [1, 784], [0] * 784),
            "input 'pixels': shape [1, 784] does not fit [-1, 28, 28]",
        ),
        (json_input("pixels", "UINT8", [28, 28], [0] * 784), "shape [28, 28] does not fit [-1, 28, 28]"),
        (json_input("images", "BYTES", [1, 2], ["aGk=", "aGk="]), "input 'images': shape [1, 2] does not fit [-1, 1]"),
        (
            json_input("pixels", "UINT8", [2, 28, 28], [0] * 784),
            "'data' has 784 elements, but shape [2, 28, 28] needs 1568",
        ),
        (json_input("pixels", "UINT8", [0, 28, 28], []), "input 'pixels' is empty"),
        (images_json([digit_png(), b"not an image", b"\x89PNG\r\n\x1a\n"]), "input 'images' element 1: not an image"),
        (
            json_input("images", "BYTES", [2], ["aGk=", "%%%"]),
            "input 'images' element 1: the image is not valid base64",
        ),
        (binary_request("images", np.array([digit_png(), digit_png()[:80]], np.object_)), "input 'images' element 1:"),
        (
            binary_request("pixels", np.zeros((1, 28, 28), np.uint8), [triton.InferRequestedOutput("label")]),
            "unknown output 'label'",
        ),
        (
            {
                "json": {
                    "inputs": [
                        pixels_json(mnist_format(1)[None])["json"]["inputs"][0],
                        images_json([digit_png()])["json"]["inputs"][0],
                    ]
                }
            },
            "send exactly one input, 'pixels' (UINT8 [-1, 28, 28]) or 'images' (BYTES [-1, 1]); "
            "got ['pixels', 'images']",
        ),
        ({"content": b'{"inputs": [}'}, "not valid JSON"),
        (
            binary_request(
                "pixels", np.zeros((1, 28, 28), np.uint8), [triton.InferRequestedOutput("digit", class_count=1)]
            ),
            "output 'digit' has no class scores to classify: ask it of ['probabilities']",
        ),
        (
            binary_request(
                "pixels",
                np.zeros((1, 28, 28), np.uint8),
                [triton.InferRequestedOutput("probabilities", class_count=11)],
            ),
            "output 'probabilities': classification asks for 11 classes, but it has 10",
        ),
    ],
    ids=[
        "input name",
        "datatype",
        "unknown datatype",
        "shape rank",
        "no batch dimension",
        "images shape",
        "data size",
        "empty batch",
        "undecodable element json",
        "bad base64",
        "truncated element binary",
        "unknown output",
        "two inputs",
        "malformed json",
        "classification of no scores",
        "classification of too many classes",
    ],
)
async def test_a_bad_request_is_a_400_that_says_what_is_wrong(client, request_kwargs, expected):
    message = error(await client.post(INFER, **request_kwargs), 400)
    assert expected in message


async def test_a_binary_size_that_does_not_match_the_shape_is_a_400(client):
    request = binary_request("pixels", np.zeros((2, 28, 28), np.uint8))
    header_length = int(request["headers"]["Inference-Header-Content-Length"])
    header = json.loads(request["content"][:header_length])
    header["inputs"][0]["shape"] = [3, 28, 28]
    new_header = json.dumps(header).encode()
    body = new_header + request["content"][header_length:]
    response = await client.post(INFER, content=body, headers={"Inference-Header-Content-Length": str(len(new_header))})
    assert (
        error(response, 400)
        == "input 'pixels': binary_data_size is 1568 bytes, but shape [3, 28, 28] of UINT8 needs 2352"
    )


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v2/models/digits/infer", "unknown model 'digits': this server serves 'mnist'"),
        ("GET", "/v2/models/digits", "unknown model 'digits'"),
        ("GET", "/v2/models/digits/ready", "unknown model 'digits'"),
        ("POST", "/v2/models/mnist/versions/2/infer", "model 'mnist' has no version '2': this server has version"),
        ("GET", "/v2/models/mnist/versions/2", "has no version '2'"),
        ("GET", "/v2/models/mnist/versions/2/ready", "has no version '2'"),
        ("GET", "/v2/models", "Not Found"),
    ],
)
async def test_an_unknown_model_version_or_path_is_a_404(client, method, path, expected):
    response = await client.request(method, path, **pixels_json(mnist_format(0)[None]) if method == "POST" else {})
    assert expected in error(response, 404)


async def test_a_wrong_method_is_a_405_in_the_oip_shape(client):
    assert error(await client.get(INFER), 405) == "Method Not Allowed"


async def test_a_compressed_body_is_a_415(client):
    response = await client.post(INFER, content=b"\x1f\x8b...", headers={"Content-Encoding": "gzip"})
    assert "Content-Encoding 'gzip' is not supported" in error(response, 415)


async def test_limits_are_413s(untrained_checkpoint):
    settings = Settings(
        model_path=untrained_checkpoint, device="cpu", max_body_bytes=4000, max_batch_images=2, max_image_pixels=5000
    )
    async with serve_in_process(create_app(settings)) as client:
        over = binary_request("pixels", np.zeros((6, 28, 28), np.uint8))
        assert "exceeds 4000 bytes (MNIST_SERVE_MAX_BODY_BYTES)" in error(await client.post(INFER, **over), 413)

        async def chunks():  # no Content-Length: counted as it streams
            yield over["content"][:3000]
            yield over["content"][3000:]

        streamed = await client.post(INFER, content=chunks(), headers=over["headers"])
        assert "MNIST_SERVE_MAX_BODY_BYTES" in error(streamed, 413)
        many = binary_request("pixels", np.zeros((3, 28, 28), np.uint8))
        assert error(await client.post(INFER, **many), 413) == (
            "input 'pixels': 3 images exceed the limit of 2 per request (MNIST_SERVE_MAX_BATCH_IMAGES): split the batch"
        )
        big = png(np.zeros((100, 100), np.uint8))
        message = error(await client.post(INFER, **images_json([digit_png(), big])), 413)
        assert message.startswith("input 'images' element 1: ")


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()  # never leave the worker blocked


async def test_a_full_queue_is_a_503_with_retry_after(gate):
    model = StubModel(gate=gate)
    app = create_app(Settings(max_batch_size=1, max_queue_size=2, max_batch_images=2), model_factory=lambda _: model)
    one = binary_request("pixels", np.zeros((1, 28, 28), np.uint8))
    two = binary_request("pixels", np.zeros((2, 28, 28), np.uint8))
    async with serve_in_process(app) as client:
        first = asyncio.create_task(client.post(INFER, **one))
        await asyncio.to_thread(model.entered.wait, 5)
        queued = asyncio.create_task(client.post(INFER, **two))
        while app.state.metrics.registry.get_sample_value("mnist_serve_queue_depth") < 2:
            await asyncio.sleep(0.005)
        refused = await client.post(INFER, **one)
        assert "queue is full" in error(refused, 503)
        assert refused.headers["Retry-After"] == "1"
        gate.set()
        assert [(await task).status_code for task in (first, queued)] == [200, 200]


async def test_not_ready_is_a_503_until_the_warm_up_is_done(gate):
    app = create_app(Settings(), model_factory=lambda _: StubModel(warm_up_gate=gate))
    async with serve_in_process(app, wait_ready=False) as client:
        assert (await client.get("/v2/health/live")).status_code == 200
        for path in ("/v2/health/ready", "/v2/models/mnist/ready"):
            response = await client.get(path)
            assert "warming up" in error(response, 503) and response.headers["Retry-After"] == "1"
        gate.set()
        while (await client.get("/v2/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        assert (await client.get("/v2/models/mnist/ready")).status_code == 200


async def test_a_failed_warm_up_is_a_503_with_a_longer_retry_after():
    app = create_app(Settings(), model_factory=lambda _: StubModel(fail_warm_up=True))
    async with serve_in_process(app, wait_ready=False) as client:
        while (response := await client.get("/v2/health/ready")).headers.get("Retry-After") != "5":
            await asyncio.sleep(0.01)
        assert "warm-up failed" in error(response, 503)
        assert "warm-up failed" in error(await client.post(INFER, **pixels_json(np.zeros((1, 28, 28), np.uint8))), 503)


async def test_a_server_that_is_not_running_answers_503_in_the_oip_shape():
    app = create_app(Settings(), model_factory=lambda _: StubModel())  # lifespan not run: no service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for response in (await client.get("/v2/models/mnist"), await client.post(INFER, json={})):
            assert "not running" in error(response, 503) and response.headers["Retry-After"] == "1"
        assert (await client.get("/v2")).status_code == 200  # needs no model


async def test_no_answer_in_time_is_a_504(gate):
    app = create_app(Settings(request_timeout_s=0.2), model_factory=lambda _: StubModel(gate=gate))
    async with serve_in_process(app) as client:
        response = await client.post(INFER, **binary_request("pixels", np.zeros((1, 28, 28), np.uint8)))
        assert "MNIST_SERVE_REQUEST_TIMEOUT_S" in error(response, 504)


async def test_oip_requests_are_counted_by_route_and_batched_like_predict(settings):
    app = create_app(settings)
    async with serve_in_process(app) as client:
        registry = app.state.metrics.registry
        passes = registry.get_sample_value("mnist_serve_batch_size_count")
        await client.post(INFER, **binary_request("pixels", np.zeros((3, 28, 28), np.uint8)))
        await client.post("/v2/models/other/infer", json={})
        counted = {
            labels: registry.get_sample_value(
                "mnist_serve_requests_total", dict(zip(("route", "method", "status"), labels, strict=True))
            )
            for labels in [
                ("/v2/models/{model_name}/infer", "POST", "200"),
                ("/v2/models/{model_name}/infer", "POST", "404"),
            ]
        }
        assert counted == {key: 1.0 for key in counted}
        assert registry.get_sample_value("mnist_serve_batch_size_count") > passes
        assert registry.get_sample_value("mnist_serve_batch_size_sum") >= 3


def test_openapi_documents_every_oip_route_under_its_tag():
    spec = create_app(Settings()).openapi()
    operations = [op for path, item in spec["paths"].items() if path.startswith("/v2") for op in item.values()]
    assert len(operations) == 11
    assert all(operation["tags"] == ["oip"] for operation in operations)
    infer = spec["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert {"400", "404", "413", "503", "504"} <= set(infer["responses"])
    assert "$ref" not in json.dumps(infer["requestBody"])  # nested models are written in place


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped checkpoint is not trained yet")
async def test_the_documented_examples_read_a_seven():
    spec = create_app(Settings()).openapi()
    examples = spec["paths"]["/v2/models/{model_name}/infer"]["post"]["requestBody"]["content"]["application/json"]
    async with serve_in_process(create_app(Settings(device="cpu"))) as client:
        for name, example in examples["examples"].items():
            response = await client.post(INFER, json=example["value"])
            digits = {output["name"]: output["data"] for output in response.json()["outputs"]}
            assert digits["digit"] == [7], name
