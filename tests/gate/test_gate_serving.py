"""`is_digit` as served: a gated checkpoint flags rendered letters and shapes and passes real MNIST digits, in
every answer form; the predictor's batched score equals the gate's plain formula; without a gate it is null."""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import MNIST

from app.config import Settings, load_settings
from app.gate.features import CUE_FEATURES, FC1_FEATURES, NETWORK_FEATURES, stack_cues
from app.gate.fit import Examples, feature_matrix, mnist_cues
from app.main import create_app
from app.predictor import PROBABILITIES, Predictor
from app.preprocess import MAX_PIXELS, inspect_upload, to_mnist_pixels
from app.service import prepare_image
from app.testing import serve_in_process
from benchmarks.renders import digit_pool, digit_renders, render_nondigit
from mnist_model import CheckpointError
from mnist_model.checkpoint import read_metadata, write_metadata


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mnist_test_pngs(mnist_root: Path) -> list[bytes]:
    images = MNIST(str(mnist_root), train=False, download=False).data.numpy()
    return [png(image) for image in images[:20]]


@pytest.fixture(scope="module")
def test_split_nondigits() -> dict[str, list[bytes]]:
    """Held-out (test split) letters and shapes as drawn on the page's canvas."""
    return {
        category: [render_nondigit(category, seed, "test", style="canvas").data for seed in range(10)]
        for category in ("letters", "shapes")
    }


@pytest.fixture
async def gated_client(gated_checkpoint: Path):
    async with serve_in_process(create_app(Settings(model_path=gated_checkpoint, device="cpu"))) as http:
        yield http


async def predict(client, data: bytes, form: str = "raw") -> dict:
    if form == "raw":
        response = await client.post("/predict", content=data, headers={"Content-Type": "image/png"})
    elif form == "multipart":
        response = await client.post("/predict", files={"file": ("x.png", data, "image/png")})
    else:
        response = await client.post("/predict", json={"image": base64.b64encode(data).decode()})
    assert response.status_code == 200, response.text
    return response.json()


async def test_rendered_letters_and_shapes_are_flagged_and_mnist_digits_are_not(
    gated_client, test_split_nondigits, mnist_test_pngs
):
    for category, uploads in test_split_nondigits.items():
        verdicts = [(await predict(gated_client, data))["is_digit"] for data in uploads]
        assert all(isinstance(verdict, bool) for verdict in verdicts)
        assert verdicts.count(False) >= 8, (category, verdicts)  # most held-out ones, from a gate fitted in seconds
    digits = [(await predict(gated_client, data))["is_digit"] for data in mnist_test_pngs]
    assert digits.count(True) >= 19, digits


@pytest.mark.parametrize("form", ["raw", "multipart", "json"])
async def test_is_digit_is_in_every_body_form_and_the_same(gated_client, test_split_nondigits, mnist_test_pngs, form):
    letter, digit = test_split_nondigits["letters"][0], mnist_test_pngs[0]
    assert (await predict(gated_client, letter, form))["is_digit"] == (await predict(gated_client, letter))["is_digit"]
    assert (await predict(gated_client, digit, form))["is_digit"] is True


async def test_batch_items_carry_is_digit_and_match_single_answers(gated_client, test_split_nondigits, mnist_test_pngs):
    files = [mnist_test_pngs[0], test_split_nondigits["shapes"][0], b"not an image", test_split_nondigits["letters"][1]]
    response = await gated_client.post(
        "/predict/batch", json={"images": [base64.b64encode(data).decode() for data in files]}
    )
    items = response.json()["predictions"]
    assert "is_digit" not in items[2]  # a refused image has an error instead
    for index in (0, 1, 3):
        assert items[index]["is_digit"] == (await predict(gated_client, files[index]))["is_digit"]


async def test_oip_declares_and_answers_is_digit(gated_client, test_split_nondigits, mnist_test_pngs):
    metadata = (await gated_client.get("/v2/models/mnist")).json()
    assert {"name": "is_digit", "datatype": "BOOL", "shape": [-1]} in metadata["outputs"]
    files = [mnist_test_pngs[1], test_split_nondigits["shapes"][1]]
    request = {
        "inputs": [
            {
                "name": "images",
                "datatype": "BYTES",
                "shape": [2],
                "data": [base64.b64encode(data).decode() for data in files],
            }
        ]
    }
    body = (await gated_client.post("/v2/models/mnist/infer", json=request)).json()
    [output] = [output for output in body["outputs"] if output["name"] == "is_digit"]
    assert output["datatype"] == "BOOL" and output["shape"] == [2]
    assert output["data"] == [(await predict(gated_client, data))["is_digit"] for data in files]
    pixels = np.stack([to_mnist_pixels(data) for data in mnist_test_pngs[:3]])
    request = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [3, 28, 28], "data": pixels.ravel().tolist()}]
    }
    request["outputs"] = [{"name": "is_digit"}]
    body = (await gated_client.post("/v2/models/mnist/infer", json=request)).json()
    assert body["outputs"][0]["data"] == [
        (await predict(gated_client, data))["is_digit"] for data in mnist_test_pngs[:3]
    ]


async def test_model_card_summarises_the_gate(gated_client):
    gate = (await gated_client.get("/model")).json()["metadata"]["digit_gate"]
    assert gate["hidden"] == 16 and gate["fitted_on"] == "tests/gate/conftest.py"
    assert "weights" not in str(gate.keys())


def test_served_verdicts_equal_the_gates_formula(gated_checkpoint, mnist_root, test_split_nondigits, mnist_test_pngs):
    """The predictor's batched score (from the cues the service hands it: measured for a preprocessed upload, None
    for an MNIST-format one) gives the verdicts of the plain formula on `feature_matrix` (as the fit computes it)."""
    predictor = Predictor(load_settings(model_path=gated_checkpoint, device="cpu"))
    gate = predictor.digit_gate
    uploads = [*test_split_nondigits["letters"], *test_split_nondigits["shapes"], *mnist_test_pngs]
    uploads += [render.data for render in digit_renders("photo", "test", 5, pool=digit_pool("test", mnist_root))]
    prepared = [prepare_image(data, MAX_PIXELS, measure_cues=True) for data in uploads]
    pixels = np.stack([image for image, _ in prepared])
    cues = stack_cues([(None if row is None else row[None], 1) for _, row in prepared])
    served = (predictor.predict(pixels.copy(), cues)[:, PROBABILITIES] >= gate.threshold).tolist()
    inspected = [inspect_upload(data) for data in uploads]
    examples = Examples(
        pixels, [cues for _, cues in inspected], np.ones(len(uploads), bool), np.array([""] * len(uploads)), {}
    )
    expected = gate.scores(feature_matrix(predictor, examples)) >= gate.threshold
    assert served == expected.tolist() and 0 < sum(served) < len(served)
    assert any(row is None for _, row in prepared) and any(row is not None for _, row in prepared)
    assert mnist_cues(pixels[-25:-5]) == [cues for _, cues in inspected[-25:-5]]


async def test_without_a_gate_is_digit_is_null_with_a_note(untrained_checkpoint, caplog):
    caplog.set_level(logging.WARNING)
    async with serve_in_process(create_app(Settings(model_path=untrained_checkpoint, device="cpu"))) as client:
        body = (
            await client.post(
                "/predict",
                content=png(np.zeros((28, 28), np.uint8) + np.eye(28, dtype=np.uint8) * 255),
                headers={"Content-Type": "image/png"},
            )
        ).json()
        assert body["is_digit"] is None
        assert "no digit gate" in (await client.get("/model")).json()["metadata"]["digit_gate"]["note"]
        outputs = [output["name"] for output in (await client.get("/v2/models/mnist")).json()["outputs"]]
        assert "is_digit" not in outputs
        request = {
            "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}],
            "outputs": [{"name": "is_digit"}],
        }
        response = await client.post("/v2/models/mnist/infer", json=request)
        assert response.status_code == 400 and "no digit gate" in response.json()["error"]
    assert "no digit gate" in caplog.text


def test_a_gate_fitted_on_other_features_is_refused_but_the_weights_load_for_a_refit(gated_checkpoint, tmp_path):
    path = tmp_path / "stale.safetensors"
    shutil.copyfile(gated_checkpoint, path)
    metadata = read_metadata(path)
    stale = dict(metadata.digit_gate) | {"features": [*FC1_FEATURES, "max_probability", "energy", *CUE_FEATURES]}
    write_metadata(path, dataclasses.replace(metadata, digit_gate=stale))  # what a gate of an older release holds
    with pytest.raises(CheckpointError, match="refit it with app.gate.fit"):
        Predictor(load_settings(model_path=path, device="cpu"))
    predictor = Predictor(load_settings(model_path=path, device="cpu"), with_gate=False)  # as app.gate.fit loads it
    assert predictor.digit_gate is None
    probabilities, features = predictor.gate_inputs(np.zeros((2, 28, 28), np.uint8))
    assert probabilities.shape == (2, 10) and features.shape == (2, len(NETWORK_FEATURES))


async def test_the_gate_switched_off_answers_null_and_says_why(gated_checkpoint, caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(model_path=gated_checkpoint, device="cpu", digit_gate=False)
    async with serve_in_process(create_app(settings)) as client:
        response = await client.post("/predict", content=png(mnist_digit_like()), headers={"Content-Type": "image/png"})
        assert response.status_code == 200 and response.json()["is_digit"] is None
        note = (await client.get("/model")).json()["metadata"]["digit_gate"]["note"]
        assert "MNIST_SERVE_DIGIT_GATE=false" in note
        outputs = [output["name"] for output in (await client.get("/v2/models/mnist")).json()["outputs"]]
        assert "is_digit" not in outputs
    assert "switched off" in caplog.text and "no digit gate" not in caplog.text
    assert Predictor(settings).digit_gate is None
    assert Predictor(load_settings(model_path=gated_checkpoint, device="cpu")).digit_gate is not None  # default on


def mnist_digit_like() -> np.ndarray:
    """A diagonal stroke in MNIST format (white on black, black border)."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[4:24, 4:24] = np.eye(20, dtype=np.uint8) * 255
    return pixels
