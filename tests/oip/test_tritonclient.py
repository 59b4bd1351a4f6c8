"""`tritonclient.http`, unchanged, against the real server (`uvicorn app.main:app`, the shipped model, default
settings): health, metadata, and real MNIST test digits through both inputs, binary and JSON, batches of 1 and
64; requested outputs; and the errors a client can cause, as the client reports them."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from app.config import DEFAULT_MODEL_PATH
from tests.oip.conftest import DIGITS, MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped checkpoint is not trained yet"),
]


@pytest.fixture(scope="module")
def client(live_server: str) -> triton.InferenceServerClient:
    with triton.InferenceServerClient(live_server.removeprefix("http://"), network_timeout=120) as http:
        yield http


def pixels_input(pixels: np.ndarray, binary: bool = True) -> triton.InferInput:
    return triton.InferInput("pixels", list(pixels.shape), "UINT8").set_data_from_numpy(pixels, binary_data=binary)


def images_input(files: np.ndarray, binary: bool = True) -> triton.InferInput:
    if not binary:  # in JSON an image is a base64 string, as the model's metadata says
        import base64

        files = np.array([base64.b64encode(data) for data in files], dtype=np.object_)
    return triton.InferInput("images", [len(files)], "BYTES").set_data_from_numpy(files, binary_data=binary)


def refused(client: triton.InferenceServerClient, status: int, *args, **kwargs) -> str:
    """The message of the error the client raises for `client.infer(*args, **kwargs)`, after its status."""
    with pytest.raises(InferenceServerException) as caught:
        client.infer(*args, **kwargs)
    assert caught.value.status() == str(status), caught.value.message()
    return caught.value.message()


def test_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    version = client.get_model_metadata(MODEL)["versions"][0]
    assert client.is_model_ready(MODEL, model_version=version)
    assert not client.is_model_ready(MODEL, model_version="0")
    assert not client.is_model_ready("digits")


def test_server_and_model_metadata(client):
    server = client.get_server_metadata()
    assert server["name"] == "mnist-serve"
    assert {"binary_tensor_data", "classification", "model_configuration"} <= set(server["extensions"])
    model = client.get_model_metadata(MODEL)
    assert {(t["name"], t["datatype"], tuple(t["shape"])) for t in model["inputs"]} == {
        ("pixels", "UINT8", (-1, 28, 28)),
        ("images", "BYTES", (-1, 1)),
    }
    assert {(t["name"], t["datatype"], tuple(t["shape"])) for t in model["outputs"]} == {
        ("probabilities", "FP32", (-1, 10)),
        ("digit", "INT64", (-1,)),
        ("is_digit", "BOOL", (-1,)),  # the shipped checkpoint has a digit gate
    }
    assert client.get_model_metadata(MODEL, model_version=model["versions"][0]) == model
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("digits")
    assert caught.value.status() == "404"


def test_model_config_as_perf_analyzer_reads_it(client):
    """Triton's model configuration: the batch limit and each input's shape after the batch dimension, which
    is what perf_analyzer builds requests from; inputs optional, as a request sends only one."""
    config = client.get_model_config(MODEL)
    assert config["max_batch_size"] == 64  # MNIST_SERVE_MAX_BATCH_IMAGES's default
    assert [(t["name"], t["data_type"], t["dims"], t["optional"]) for t in config["input"]] == [
        ("pixels", "TYPE_UINT8", [28, 28], True),
        ("images", "TYPE_STRING", [1], True),
    ]
    assert [t["name"] for t in config["output"]] == ["probabilities", "digit", "is_digit"]
    assert config["dynamic_batching"]["preferred_batch_size"] == [64]
    assert "model_configuration" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("input_name", ["pixels", "images"])
def test_real_digits_are_read_through_every_input_and_encoding(client, digits, input_name, binary, batch):
    count = 16 if batch == 1 else DIGITS
    outputs = None  # tritonclient then asks for every output in binary
    if not binary:
        outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probabilities", "digit")]
    predicted = []
    for start in range(0, count, batch):
        chunk = slice(start, start + batch)
        tensor = (
            pixels_input(digits.pixels[chunk], binary)
            if input_name == "pixels"
            else images_input(digits.pngs[chunk], binary)
        )
        result = client.infer(MODEL, [tensor], outputs=outputs)
        probabilities, digit = result.as_numpy("probabilities"), result.as_numpy("digit")
        assert probabilities.shape == (batch, 10) and probabilities.dtype == np.float32
        assert digit.shape == (batch,) and digit.dtype == np.int64
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
        np.testing.assert_array_equal(digit, probabilities.argmax(axis=1))
        assert ("data" in result.get_output("digit")) is not binary  # JSON data, or binary after the JSON
        predicted.extend(digit.tolist())
    accuracy = np.mean(np.array(predicted) == digits.labels[:count])
    assert accuracy >= 0.98, f"{accuracy:.2%} of {count} real MNIST test digits"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_class_count_gives_the_top_digits_as_triton_would(client, digits, binary):
    """`class_count=2`: two `value:digit` strings per image, highest first, the first the label for real digits."""
    top = triton.InferRequestedOutput("probabilities", binary_data=binary, class_count=2)
    classes = client.infer(MODEL, [images_input(digits.pngs[:64])], outputs=[top]).as_numpy("probabilities")
    assert classes.shape == (64, 2)
    rows = [[(item if isinstance(item, bytes) else item.encode()).split(b":") for item in row] for row in classes]
    assert np.mean(np.array([int(row[0][1]) for row in rows]) == digits.labels[:64]) >= 0.98
    assert all(float(first[0]) >= float(second[0]) for first, second in rows)


def test_requested_outputs_with_and_without_binary_data(client, digits):
    tensor = pixels_input(digits.pixels[:8])
    only = client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("digit", binary_data=False)])
    assert only.as_numpy("probabilities") is None
    assert only.get_output("digit")["data"] == digits.labels[:8].tolist()
    mixed = client.infer(
        MODEL,
        [tensor],
        outputs=[
            triton.InferRequestedOutput("probabilities", binary_data=True),
            triton.InferRequestedOutput("digit", binary_data=False),
        ],
        request_id="batch-8",
    )
    assert mixed.get_response()["id"] == "batch-8"
    assert mixed.get_output("probabilities")["parameters"] == {"binary_data_size": 8 * 10 * 4}
    np.testing.assert_array_equal(mixed.as_numpy("probabilities").argmax(axis=1), mixed.as_numpy("digit"))


def test_a_request_for_a_version_gets_that_version(client, digits):
    version = client.get_model_metadata(MODEL)["versions"][0]
    result = client.infer(MODEL, [pixels_input(digits.pixels[:1])], model_version=version)
    assert result.get_response()["model_version"] == version


def test_client_errors_are_reported_with_their_status_and_message(client, digits):
    pixels = digits.pixels[:2]
    wrong_name = triton.InferInput("image", [2, 28, 28], "UINT8").set_data_from_numpy(pixels)
    assert "unknown input 'image'" in refused(client, 400, MODEL, [wrong_name])
    floats = pixels.astype(np.float32)
    wrong_type = triton.InferInput("pixels", [2, 28, 28], "FP32").set_data_from_numpy(floats)
    assert "datatype FP32 is not UINT8" in refused(client, 400, MODEL, [wrong_type])
    flat = pixels.reshape(2, 784)
    wrong_shape = triton.InferInput("pixels", [2, 784], "UINT8").set_data_from_numpy(flat)
    assert "shape [2, 784] does not fit [-1, 28, 28]" in refused(client, 400, MODEL, [wrong_shape])
    short = pixels_input(pixels)
    short.set_shape([3, 28, 28])  # the data is still two images
    assert "binary_data_size is 1568 bytes, but shape [3, 28, 28]" in refused(client, 400, MODEL, [short])
    files = np.array([digits.pngs[0], b"not an image", digits.pngs[1]], dtype=np.object_)
    assert "input 'images' element 1: " in refused(client, 400, MODEL, [images_input(files)])
    both = [pixels_input(pixels), images_input(digits.pngs[:2])]
    assert "send exactly one input" in refused(client, 400, MODEL, both)
    assert "unknown model 'digits'" in refused(client, 404, "digits", [pixels_input(pixels)])
    assert "has no version '0'" in refused(client, 404, MODEL, [pixels_input(pixels)], model_version="0")
    too_many = pixels_input(np.zeros((65, 28, 28), np.uint8))
    assert "65 images exceed the limit of 64" in refused(client, 413, MODEL, [too_many])
    too_big = pixels_input(np.zeros((14_000, 28, 28), np.uint8))  # 10.98 MB > MNIST_SERVE_MAX_BODY_BYTES
    assert "MNIST_SERVE_MAX_BODY_BYTES" in refused(client, 413, MODEL, [too_big])
    assert client.is_server_ready()  # and the server goes on
