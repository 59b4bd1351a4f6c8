"""`tritonclient.grpc`, unchanged, against the real server as `make serve` runs it with gRPC on (gunicorn, two
uvicorn workers forked after one import, both bound to the gRPC port; the shipped model): health, metadata, real
MNIST test digits through both inputs in batches of 1 and 64, requested outputs, many clients at once, and the
errors a client can cause, as the client reports them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from app.config import DEFAULT_MODEL_PATH
from app.testing import free_port, running_server
from tests.helpers import REPO
from tests.oip.conftest import DIGITS, MODEL, Digits

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped checkpoint is not trained yet"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[triton.InferenceServerClient]:
    port = free_port()
    with running_server(server="gunicorn", settings={"grpc_port": str(port)}, env={"WEB_CONCURRENCY": "2"}, cwd=REPO):
        with triton.InferenceServerClient(f"127.0.0.1:{port}") as grpc_client:
            # The server was ready when one worker answered /readyz; this client's connection may have gone to
            # the other one, still warming up on a loaded machine: wait for it as a client would.
            deadline = time.monotonic() + 60
            while not grpc_client.is_server_ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            yield grpc_client


def tensor(name: str, data: np.ndarray) -> triton.InferInput:
    datatype = "BYTES" if data.dtype == np.object_ else "UINT8"
    return triton.InferInput(name, list(data.shape), datatype).set_data_from_numpy(data)


def status(error: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return error.value.status()


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert not client.is_model_ready(MODEL, model_version="0")
    assert client.get_server_metadata().name == "mnist-serve"
    model = client.get_model_metadata(MODEL, as_json=True)
    assert {(t["name"], t["datatype"], tuple(t["shape"])) for t in model["inputs"]} == {
        ("pixels", "UINT8", ("-1", "28", "28")),  # int64 fields are strings in protobuf's JSON
        ("images", "BYTES", ("-1", "1")),
    }
    assert [t["name"] for t in model["outputs"]] == ["probabilities", "digit", "is_digit"]
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("digits")
    assert status(unknown) == "StatusCode.NOT_FOUND"


def test_model_config(client):
    config = client.get_model_config(MODEL).config  # the protobuf message, as tritonclient.grpc returns it
    assert config.max_batch_size == 64
    assert [(t.name, t.dims) for t in config.input] == [("pixels", [28, 28]), ("images", [1])]
    assert all(t.optional for t in config.input)
    assert [t.name for t in config.output] == ["probabilities", "digit", "is_digit"]
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_config("digits")
    assert status(unknown) == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("input_name", ["pixels", "images"])
def test_real_digits_are_read_through_both_inputs(client, digits: Digits, input_name, batch):
    count = 16 if batch == 1 else DIGITS
    source = digits.pixels if input_name == "pixels" else digits.pngs
    predicted = []
    for start in range(0, count, batch):
        result = client.infer(MODEL, [tensor(input_name, source[start : start + batch])])
        probabilities, digit = result.as_numpy("probabilities"), result.as_numpy("digit")
        assert probabilities.shape == (batch, 10) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
        np.testing.assert_array_equal(digit, probabilities.argmax(axis=1))
        assert result.as_numpy("is_digit").dtype == np.bool_
        predicted.extend(digit.tolist())
    accuracy = np.mean(np.array(predicted) == digits.labels[:count])
    assert accuracy >= 0.98, f"{accuracy:.2%} of {count} real MNIST test digits"


def test_requested_outputs_only(client, digits: Digits):
    result = client.infer(MODEL, [tensor("pixels", digits.pixels[:8])], outputs=[triton.InferRequestedOutput("digit")])
    assert result.as_numpy("probabilities") is None
    assert result.as_numpy("digit").tolist() == digits.labels[:8].tolist()


def test_class_count_gives_the_top_digits_as_triton_would(client, digits: Digits):
    """`class_count=3`: three `b"value:digit"` per image, highest first, the first the label for real digits."""
    top = triton.InferRequestedOutput("probabilities", class_count=3)
    classes = client.infer(MODEL, [tensor("images", digits.pngs[:64])], outputs=[top]).as_numpy("probabilities")
    assert classes.shape == (64, 3)
    firsts = [int(row[0].split(b":")[1]) for row in classes]
    assert np.mean(np.array(firsts) == digits.labels[:64]) >= 0.98
    assert all(float(row[0].split(b":")[0]) >= float(row[1].split(b":")[0]) for row in classes)


def test_many_clients_at_once_get_their_own_answers(client, digits: Digits):
    def read(index: int) -> int:
        answer = client.infer(MODEL, [tensor("pixels", digits.pixels[index : index + 1])])
        return int(answer.as_numpy("digit")[0])

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(read, range(64)))
    assert np.mean(np.array(answers) == digits.labels[:64]) >= 0.98


def test_errors_as_the_client_reports_them(client, digits: Digits):
    with pytest.raises(InferenceServerException) as shape:
        client.infer(MODEL, [tensor("pixels", np.zeros((1, 28, 27), np.uint8))])
    assert status(shape) == "StatusCode.INVALID_ARGUMENT" and "does not fit [-1, 28, 28]" in shape.value.message()
    with pytest.raises(InferenceServerException) as unreadable:
        client.infer(MODEL, [tensor("images", np.array([digits.pngs[0], b"not an image"], dtype=np.object_))])
    assert status(unreadable) == "StatusCode.INVALID_ARGUMENT" and "element 1" in unreadable.value.message()
    with pytest.raises(InferenceServerException) as too_many:
        client.infer(MODEL, [tensor("pixels", np.zeros((65, 28, 28), np.uint8))])
    assert status(too_many) == "StatusCode.RESOURCE_EXHAUSTED"
