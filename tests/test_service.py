"""Service.classify_images / classify_image / classify_pixels without HTTP: results in order, what the model saw,
typed errors, and queue room given back on every path."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from app import service as service_module
from app.config import Settings
from app.errors import ModelTimeout, ModelUnavailable, QueueFull
from app.metrics import Metrics
from app.preprocess import BadItem
from app.preprocess.cues import CueNotes
from app.service import Classification, Service
from app.testing import StubModel
from mnist_model import ModelMetadata
from tests.helpers import digit_png

MEAN, STD = 0.5, 0.25


class RecordingModel(StubModel):
    """Keeps every image it was given (uint8 28×28); answers each with [its mean pixel, 0, …]."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.metadata = ModelMetadata(command="stub", mean=MEAN, std=STD)
        self.seen: list[np.ndarray] = []

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        super().predict(pixels, cues)
        self.seen.extend(pixels.copy())
        rows = torch.zeros((len(pixels), 10))
        rows[:, 0] = torch.from_numpy(pixels.reshape(len(pixels), -1).mean(axis=1))
        return rows


def mnist_digit() -> np.ndarray:
    """A 28×28 white-on-black digit in MNIST format (black outer ring, bright ink), so it passes through."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    pixels[6:9, 8:20] = 180
    return pixels


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_service() -> Iterator:
    started: list[tuple[Service, StubModel]] = []

    def make(model: StubModel | None = None, **settings: object) -> Service:
        model = model or RecordingModel()
        options = {"decode_threads": 2, "max_queue_size": 8, "max_batch_images": 8} | settings
        service = Service.start(Settings(**options), lambda _: model, Metrics())
        started.append((service, model))
        return service

    yield make
    for service, model in started:
        for gate in (model.gate, model.warm_up_gate):
            if gate is not None:
                gate.set()
        service.stop()


@pytest.fixture(params=["classify_images", "classify_image"])
def classify_one(request: pytest.FixtureRequest):
    """One upload through either way in: the batch path with a list of one, or /predict's own `classify_image`."""
    if request.param == "classify_image":
        return lambda service, data: service.classify_image(data)

    async def through_the_batch_path(service: Service, data: bytes) -> object:
        [result] = await service.classify_images([data])
        return result

    return through_the_batch_path


def queue_room_free(service: Service) -> bool:
    """Whether the whole queue can be reserved: nothing queued, and no reservation left behind."""
    try:
        with service.batcher.reserve(service.settings.max_queue_size):
            return True
    except QueueFull:
        return False


async def test_classify_images_answers_in_order_with_bad_items_in_place(make_service):
    service = make_service()
    refused = BadItem(400, "the image is not valid base64")
    results = await service.classify_images([digit_png(), b"not an image", refused, png(mnist_digit())])
    assert isinstance(results[0], Classification) and isinstance(results[3], Classification)
    assert isinstance(results[1], BadItem) and results[1].status_code == 415 and "PNG" in results[1].detail
    assert results[2] is refused
    assert np.array_equal(results[3].pixels, mnist_digit())  # an MNIST-format upload reaches the model unchanged
    assert results[0].pixels.shape == (28, 28) and results[0].pixels.dtype == np.uint8
    assert not results[0].pixels.flags.writeable
    assert results[3].probabilities[0] == pytest.approx(mnist_digit().mean(), abs=1e-4)
    assert results[0].probabilities[0] == pytest.approx(results[0].pixels.mean(), abs=1e-4)  # rows stay in order
    assert queue_room_free(service)


async def test_classify_images_with_only_bad_items_never_asks_the_model(make_service):
    model = RecordingModel()
    service = make_service(model)
    results = await service.classify_images([b"", BadItem(422, "not a file")])
    assert [result.status_code for result in results] == [400, 422]
    assert model.batch_sizes == []


async def test_classify_pixels_reach_the_model_unchanged_and_keep_their_own_copy(make_service):
    model = RecordingModel()
    service = make_service(model)
    pixels = np.stack([mnist_digit(), np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    results = await service.classify_pixels(pixels)
    assert len(results) == 3 and all(isinstance(result, Classification) for result in results)
    assert model.batch_sizes == [3]  # one submission, one forward pass
    for seen, original in zip(model.seen, pixels, strict=True):
        assert seen.dtype == np.uint8 and np.array_equal(seen, original)  # the model normalises (test_predictor)
    pixels[0] = 7  # the caller reuses its buffer
    assert np.array_equal(results[0].pixels, mnist_digit())
    assert not results[0].pixels.flags.writeable


async def test_pixels_and_their_png_reach_the_model_identically(make_service):
    model = RecordingModel()
    service = make_service(model)
    await service.classify_pixels(mnist_digit()[None])
    await service.classify_images([png(mnist_digit())])
    assert np.array_equal(model.seen[0], model.seen[1])


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((28, 28), np.uint8), np.zeros((1, 28, 28), np.float32), np.zeros((2, 32, 32), np.uint8)],
    ids=["no batch axis", "float", "32x32"],
)
async def test_classify_pixels_refuses_other_shapes_and_dtypes(make_service, pixels):
    service = make_service()
    with pytest.raises(ValueError, match="N×28×28"):
        await service.classify_pixels(pixels)
    assert queue_room_free(service)


async def test_full_queue_is_a_typed_503_with_retry_after(make_service, classify_one):
    service = make_service(max_queue_size=2, max_batch_images=2)
    with service.batcher.reserve(2):
        with pytest.raises(QueueFull) as caught:
            await classify_one(service, digit_png())
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "1"}
    assert "queue is full" in str(caught.value)


async def test_a_failed_warm_up_is_a_typed_503_with_retry_after(make_service):
    service = make_service(StubModel(fail_warm_up=True))
    while service.batcher.failure is None:
        await asyncio.sleep(0.01)
    with pytest.raises(ModelUnavailable) as caught:
        await service.classify_pixels(mnist_digit()[None])
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "5"}
    with pytest.raises(ModelUnavailable, match="warm-up failed"):
        service.check_ready()
    assert queue_room_free(service)


@pytest.mark.parametrize(
    "late",
    [
        lambda service: service.classify_pixels(np.zeros((2, 28, 28), np.uint8)),
        lambda service: service.classify_image(png(mnist_digit())),
    ],
    ids=["pixels", "one upload"],
)
async def test_no_answer_in_time_is_a_typed_504_and_the_image_is_skipped(make_service, late):
    gate = threading.Event()
    model = RecordingModel(gate=gate)
    service = make_service(model, request_timeout_s=0.2)
    blocking = asyncio.create_task(service.classify_pixels(mnist_digit()[None]))
    await asyncio.to_thread(model.entered.wait, 5)
    with pytest.raises(ModelTimeout) as caught:
        await late(service)
    assert caught.value.status_code == 504 and caught.value.headers == {}
    assert "MNIST_SERVE_REQUEST_TIMEOUT_S" in str(caught.value)
    gate.set()
    with pytest.raises(ModelTimeout):
        await blocking  # it also waited past the timeout
    await service.classify_pixels(mnist_digit()[None])
    assert model.batch_sizes == [1, 1]  # the two abandoned images never reached the model
    assert queue_room_free(service)


async def test_a_preprocessing_bug_fails_only_its_image(make_service, monkeypatch, caplog, classify_one):
    service = make_service()

    def broken(data: bytes, max_pixels: int, notes: object = None) -> np.ndarray:
        raise KeyError("decoder bug")

    monkeypatch.setattr(service_module, "to_mnist_pixels", broken)
    result = await classify_one(service, digit_png())
    assert result == BadItem(400, "the image could not be decoded")
    assert "something other than ImageError" in caplog.text
    assert queue_room_free(service)


async def test_queue_room_is_given_back_when_preprocessing_raises(make_service, monkeypatch):
    service = make_service()

    async def failing(blobs: object) -> list[object]:
        raise RuntimeError("the decode pool is gone")

    monkeypatch.setattr(service, "_prepare_images", failing)
    with pytest.raises(RuntimeError, match="decode pool"):
        await service.classify_images([digit_png(), digit_png()])
    assert queue_room_free(service)


async def test_queue_room_is_given_back_when_the_request_is_cancelled_while_decoding(
    make_service, monkeypatch, classify_one
):
    service = make_service(inline_decode_max_pixels=0)  # every image on the decode threads
    decoding, release = threading.Event(), threading.Event()
    real = service_module.to_mnist_pixels

    def slow(data: bytes, max_pixels: int, notes: CueNotes | None = None) -> np.ndarray:
        decoding.set()
        release.wait(5)
        return real(data, max_pixels, notes)

    monkeypatch.setattr(service_module, "to_mnist_pixels", slow)
    request = asyncio.create_task(classify_one(service, digit_png()))
    await asyncio.to_thread(decoding.wait, 5)
    assert not queue_room_free(service)  # held while the image decodes
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert queue_room_free(service)
    release.set()


async def test_small_images_are_preprocessed_on_the_loop_and_big_ones_on_the_decode_threads(make_service, monkeypatch):
    service = make_service(inline_decode_max_pixels=28 * 28, max_image_pixels=100_000)
    calls: list[tuple[str, int]] = []
    real, real_batch = service_module.to_mnist_pixels, service_module.mnist_pngs

    def recording(data: bytes, max_pixels: int, notes: CueNotes | None = None) -> np.ndarray:
        calls.append((threading.current_thread().name, max_pixels))
        return real(data, max_pixels, notes)

    def recording_batch(blobs: list[bytes]) -> list[np.ndarray | None]:
        answers = real_batch(blobs)
        calls.append((threading.current_thread().name, sum(pixels is not None for pixels in answers)))
        return answers

    monkeypatch.setattr(service_module, "to_mnist_pixels", recording)
    monkeypatch.setattr(service_module, "mnist_pngs", recording_batch)
    small, big = png(mnist_digit()), digit_png()  # 28×28 and 64×64
    results = await service.classify_images([small, big])
    assert all(isinstance(result, Classification) for result in results)
    loop_thread = threading.current_thread().name
    assert calls[0] == (loop_thread, 1)  # the MNIST-format PNG, taken inline by the batched fast path
    assert calls[1] == (loop_thread, 28 * 28)  # the big one: only its header is read before it is handed over
    assert calls[2][0].startswith("mnist-decode") and calls[2][1] == 100_000
    assert len(calls) == 3


async def test_without_inline_decoding_even_mnist_pngs_go_to_the_decode_threads(make_service, monkeypatch):
    service = make_service(inline_decode_max_pixels=0)
    threads: list[str] = []
    real = service_module.to_mnist_pixels

    def recording(data: bytes, max_pixels: int, notes: CueNotes | None = None) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return real(data, max_pixels, notes)

    monkeypatch.setattr(service_module, "to_mnist_pixels", recording)
    results = await service.classify_images([png(mnist_digit()), png(mnist_digit())])
    assert all(isinstance(result, Classification) for result in results)
    assert len(threads) == 2 and all(name.startswith("mnist-decode") for name in threads)


async def test_an_image_over_the_service_limit_is_413_wherever_it_is_decoded(make_service, classify_one):
    service = make_service(inline_decode_max_pixels=28 * 28, max_image_pixels=1000)
    result = await classify_one(service, digit_png())  # 4096 pixels
    assert isinstance(result, BadItem) and result.status_code == 413 and "1000" in result.detail


@pytest.mark.parametrize(
    ("forward_on", "runtime", "on_loop"),
    [
        ("auto", {"device": "cpu", "num_threads": 1}, True),
        ("auto", {"device": "cpu", "num_threads": 4}, False),
        ("auto", {"device": "cuda:0", "num_threads": 1}, False),
        ("auto", {"device": "none", "num_threads": 1}, False),
        ("loop", {"device": "cuda:0", "num_threads": 8}, True),
        ("thread", {"device": "cpu", "num_threads": 1}, False),
    ],
)
def test_forward_passes_run_on_the_loop_only_for_a_one_thread_cpu_model_unless_told(forward_on, runtime, on_loop):
    class Model(StubModel):
        def describe(self) -> dict[str, object]:
            return runtime

    assert service_module.forward_on_loop(Settings(forward_on=forward_on), Model()) is on_loop


@pytest.mark.parametrize(
    "settings",
    [{}, {"inline_decode_max_pixels": 0}, {"inline_decode_max_pixels": 10**6}],
    ids=["defaults", "every decode on the threads", "every decode on the loop"],
)
async def test_one_image_is_answered_alike_by_both_ways_in(make_service, settings):
    uploads = {
        "MNIST-format PNG": png(mnist_digit()),
        "64x64 PNG": digit_png(),
        "not an image": b"not an image",
        "empty": b"",
    }
    service = make_service(**settings)
    for name, data in uploads.items():
        one = await service.classify_image(data)
        [listed] = await service.classify_images([data])
        assert type(one) is type(listed), name
        if isinstance(one, BadItem):
            assert one == listed, name
        else:
            assert one.probabilities == listed.probabilities and one.is_digit is listed.is_digit, name
            assert np.array_equal(one.pixels, listed.pixels) and not one.pixels.flags.writeable, name
    assert queue_room_free(service)


async def test_one_image_is_decoded_where_its_size_says(make_service, monkeypatch):
    service = make_service(inline_decode_max_pixels=28 * 28, max_image_pixels=100_000)
    calls: list[tuple[str, int]] = []
    real = service_module.to_mnist_pixels

    def recording(data: bytes, max_pixels: int, notes: CueNotes | None = None) -> np.ndarray:
        calls.append((threading.current_thread().name, max_pixels))
        return real(data, max_pixels, notes)

    monkeypatch.setattr(service_module, "to_mnist_pixels", recording)
    assert isinstance(await service.classify_image(png(mnist_digit())), Classification)
    assert calls == []  # the MNIST-format PNG: the fast path on the loop, no preprocessing
    assert isinstance(await service.classify_image(digit_png()), Classification)
    loop_thread = threading.current_thread().name
    assert calls[0] == (loop_thread, 28 * 28)  # only its header is read on the loop before it is handed over
    assert calls[1][0].startswith("mnist-decode") and calls[1][1] == 100_000
    assert len(calls) == 2
