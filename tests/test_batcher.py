"""DynamicBatcher: batching policy, per-image results, bounded queue, failures; no HTTP involved."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from app.batcher import DynamicBatcher, ModelUnavailable, QueueFull
from app.testing import StubModel


class EchoModel(StubModel):
    """Answers each image with [its first pixel, 0, …], so every answer shows which image it came from."""

    def predict(self, images: list[torch.Tensor]) -> torch.Tensor:
        super().predict(images)
        rows = torch.zeros((len(images), 10))
        rows[:, 0] = torch.stack([image.flatten()[0] for image in images])
        return rows


def image(value: float) -> torch.Tensor:
    return torch.full((1, 28, 28), float(value))


@pytest.fixture
def batchers():
    """Builds started batchers and, at teardown, opens every gate and stops them."""
    made: list[tuple[DynamicBatcher, StubModel]] = []

    def make(model: StubModel, **settings: float) -> DynamicBatcher:
        options = {"max_batch_size": 64, "max_batch_wait_ms": 0, "max_queue_size": 1024} | settings
        batcher = DynamicBatcher(model, **options)
        batcher.start()
        made.append((batcher, model))
        return batcher

    yield make
    for batcher, model in made:
        for gate in (model.gate, model.warm_up_gate):
            if gate is not None:
                gate.set()
        batcher.stop(timeout_s=5)


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_images_queued_during_a_forward_pass_share_the_next_one(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model)
    first = batcher.submit([image(100)])
    await asyncio.to_thread(model.entered.wait, 5)
    rest = [batcher.submit([image(value)])[0] for value in range(20)]
    gate.set()
    answers = await asyncio.gather(first[0], *rest)
    assert [row[0] for row in answers] == [100, *range(20)]
    assert model.batch_sizes == [1, 20]


async def test_batches_never_exceed_max_batch_size(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model, max_batch_size=4)
    futures = batcher.submit([image(0)])
    await asyncio.to_thread(model.entered.wait, 5)
    futures += batcher.submit([image(value) for value in range(1, 10)])
    gate.set()
    answers = await asyncio.gather(*futures)
    assert [row[0] for row in answers] == list(range(10))
    assert model.batch_sizes == [1, 4, 4, 1]


async def test_a_lone_image_does_not_wait_for_the_batch_window(batchers):
    batcher = batchers(EchoModel(), max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    start = time.perf_counter()
    [answer] = await asyncio.gather(*batcher.submit([image(3)]))
    assert answer[0] == 3
    assert time.perf_counter() - start < 1.0


async def test_a_batch_is_held_open_for_reserved_images(batchers):
    model = EchoModel()
    batcher = batchers(model, max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    with batcher.reserve(1) as late, batcher.reserve(1) as early:
        first = early.submit([image(1)])
        await asyncio.sleep(0.05)
        second = late.submit([image(2)])
    answers = await asyncio.gather(*first, *second)
    assert [row[0] for row in answers] == [1, 2]
    assert model.batch_sizes == [2]


async def test_ending_a_reservation_releases_the_held_batch(batchers):
    model = EchoModel()
    batcher = batchers(model, max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    with batcher.reserve(1) as early:
        with batcher.reserve(1):  # a request whose image fails to decode: it never submits
            futures = early.submit([image(1)])
            await asyncio.sleep(0.05)
            assert not futures[0].done()  # held open for the reserved image
            start = time.perf_counter()
        await asyncio.gather(*futures)
    assert time.perf_counter() - start < 1.0
    assert model.batch_sizes == [1]


async def test_full_queue_refuses_new_images_all_or_nothing(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model, max_queue_size=2)
    running = batcher.submit([image(0)])
    await asyncio.to_thread(model.entered.wait, 5)
    queued = batcher.submit([image(1)])
    with pytest.raises(QueueFull):
        batcher.submit([image(2), image(3)])  # room for one only: none is queued
    queued += batcher.submit([image(2)])
    with pytest.raises(QueueFull):
        batcher.submit([image(4)])
    gate.set()
    answers = await asyncio.gather(*running, *queued)
    assert [row[0] for row in answers] == [0, 1, 2]


async def test_reserved_images_hold_queue_room_until_the_block_ends(batchers):
    batcher = batchers(EchoModel(), max_queue_size=3)
    with batcher.reserve(2):
        with pytest.raises(QueueFull):
            with batcher.reserve(2):  # refused before anyone spends CPU decoding it
                pass
        with pytest.raises(QueueFull):
            batcher.submit([image(0), image(1)])
    answers = await asyncio.gather(*batcher.submit([image(0), image(1), image(2)]))
    assert [row[0] for row in answers] == [0, 1, 2]


async def test_a_reservation_is_given_back_on_every_path(batchers):
    batcher = batchers(EchoModel(), max_queue_size=4)
    await wait_until(lambda: batcher.ready)

    def whole_queue_free() -> bool:
        try:
            with batcher.reserve(4):
                return True
        except QueueFull:
            return False

    with pytest.raises(RuntimeError, match="decoding blew up"):
        with batcher.reserve(4):
            raise RuntimeError("decoding blew up")
    assert whole_queue_free()

    async def cancelled_while_decoding() -> None:
        with batcher.reserve(4):
            await asyncio.sleep(10)

    task = asyncio.create_task(cancelled_while_decoding())
    await asyncio.sleep(0.01)
    assert not whole_queue_free()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert whole_queue_free()

    with batcher.reserve(4) as reservation:  # two of four images decoded: the other two places come back too
        futures = reservation.submit([image(1), image(2)])
        with pytest.raises(ValueError, match="reservation of 0"):
            reservation.submit([image(3)])  # a reservation submits once
    answers = await asyncio.gather(*futures)
    assert [row[0] for row in answers] == [1, 2]
    assert whole_queue_free()


async def test_a_refused_submission_gives_its_reservation_back(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate, fail_warm_up=True), max_queue_size=2)
    warm_up_gate.set()
    await wait_until(lambda: batcher.failure is not None)
    with batcher.reserve(2) as reservation:
        with pytest.raises(ModelUnavailable):
            reservation.submit([image(1), image(2)])
        with batcher.reserve(2):  # the room came back although nothing was queued
            pass


async def test_images_whose_request_gave_up_are_skipped(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model)
    running = batcher.submit([image(0)])
    await asyncio.to_thread(model.entered.wait, 5)
    abandoned = batcher.submit([image(1), image(2)])
    kept = batcher.submit([image(3)])
    for future in abandoned:
        future.cancel()
    gate.set()
    answers = await asyncio.gather(*running, *kept)
    assert [row[0] for row in answers] == [0, 3]
    assert model.batch_sizes == [1, 1]


async def test_a_failed_forward_pass_fails_its_images_and_the_worker_goes_on(batchers):
    model = EchoModel(fail_predict=True)
    batcher = batchers(model)
    with pytest.raises(RuntimeError, match="stub forward failure"):
        await asyncio.gather(*batcher.submit([image(1)]))
    model.fail_predict = False
    [answer] = await asyncio.gather(*batcher.submit([image(2)]))
    assert answer[0] == 2


async def test_readiness_waits_for_warm_up(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate))
    queued = batcher.submit([image(5)])  # accepted before readiness, answered after warm-up
    await asyncio.sleep(0.05)
    assert not batcher.ready and not queued[0].done()
    warm_up_gate.set()
    [answer] = await asyncio.gather(*queued)
    assert answer[0] == 5 and batcher.ready


async def test_failed_warm_up_makes_the_model_unavailable(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate, fail_warm_up=True))
    stranded = batcher.submit([image(1)])
    warm_up_gate.set()
    with pytest.raises(ModelUnavailable, match="warm-up failed"):
        await asyncio.gather(*stranded)
    assert not batcher.ready and batcher.failure is not None
    with pytest.raises(ModelUnavailable):
        batcher.submit([image(2)])


async def test_stop_finishes_queued_images_then_refuses_new_ones(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model)
    futures = batcher.submit([image(0)])
    await asyncio.to_thread(model.entered.wait, 5)
    futures += batcher.submit([image(1)])
    stopping = asyncio.create_task(asyncio.to_thread(batcher.stop, 5))
    await asyncio.sleep(0.02)
    assert not batcher.ready
    with pytest.raises(ModelUnavailable):
        batcher.submit([image(2)])
    gate.set()
    await stopping
    answers = await asyncio.gather(*futures)
    assert [row[0] for row in answers] == [0, 1]


async def test_metrics_record_batch_sizes_and_queue_depth(batchers):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = batchers(model)
    registry = batcher.metrics.registry
    futures = batcher.submit([image(0)])
    await asyncio.to_thread(model.entered.wait, 5)
    futures += batcher.submit([image(1), image(2)])
    assert registry.get_sample_value("mnist_serve_queue_depth") == 2
    gate.set()
    await asyncio.gather(*futures)
    assert registry.get_sample_value("mnist_serve_batch_size_count") == 2
    assert registry.get_sample_value("mnist_serve_batch_size_sum") == 3
    assert registry.get_sample_value("mnist_serve_inference_duration_seconds_count") == 2
    assert registry.get_sample_value("mnist_serve_queue_depth") == 0
