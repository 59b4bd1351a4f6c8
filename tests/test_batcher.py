"""DynamicBatcher: batching policy, per-request results, bounded queue, failures; no HTTP involved. The policy
tests run with forward passes on a worker thread and on the event loop alike."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from app.batcher import DynamicBatcher, ModelUnavailable, QueueFull
from app.gate.features import MNIST_FORMAT_CUES
from app.testing import StubModel


class EchoModel(StubModel):
    """Answers each image with [its first pixel, 0, …], so every answer shows which image it came from."""

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        super().predict(pixels, cues)
        rows = torch.zeros((len(pixels), 10))
        rows[:, 0] = torch.from_numpy(pixels[:, 0, 0].astype(np.float32))
        return rows


def images(*values: int) -> np.ndarray:
    """MNIST-format images whose pixels all equal `value`, one per value."""
    return np.stack([np.full((28, 28), value, np.uint8) for value in values])


def firsts(rows: list[list[float]]) -> list[float]:
    return [row[0] for row in rows]


@pytest.fixture
def make_batcher():
    """Builds started batchers and, at teardown, opens every gate and stops them."""
    made: list[tuple[DynamicBatcher, StubModel]] = []

    def make(model: StubModel, *, on_loop: bool, **settings: float) -> DynamicBatcher:
        options = {"max_batch_size": 64, "max_batch_wait_ms": 0, "max_queue_size": 1024} | settings
        batcher = DynamicBatcher(model, on_loop=on_loop, **options)
        batcher.start()
        made.append((batcher, model))
        return batcher

    yield make
    for batcher, model in made:
        for gate in (model.gate, model.warm_up_gate):
            if gate is not None:
                gate.set()
        batcher.stop(timeout_s=5)


@pytest.fixture(params=["thread", "loop"])
def batchers(request, make_batcher):
    """Batchers whose forward passes run on a worker thread, then (second run) on the event loop."""
    return lambda model, **settings: make_batcher(model, on_loop=request.param == "loop", **settings)


@pytest.fixture
def threaded(make_batcher):
    """Batchers with a worker thread: for tests that hold a forward pass on a gate (on the loop, that would
    block the test itself)."""
    return lambda model, **settings: make_batcher(model, on_loop=False, **settings)


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_images_queued_during_a_forward_pass_share_the_next_one(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model)
    first = batcher.submit(images(100))
    await asyncio.to_thread(model.entered.wait, 5)
    rest = [batcher.submit(images(value)) for value in range(20)]
    gate.set()
    answers = await asyncio.gather(first, *rest)
    assert [firsts(rows) for rows in answers] == [[100], *([value] for value in range(20))]
    assert model.batch_sizes == [1, 20]


async def test_on_the_loop_requests_that_arrive_together_share_a_pass_on_the_loops_thread(make_batcher):
    threads = []

    class Recording(EchoModel):
        def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
            threads.append(threading.current_thread())
            return super().predict(pixels, cues)

    model = Recording()
    batcher = make_batcher(model, on_loop=True)
    await wait_until(lambda: batcher.ready)
    futures = [batcher.submit(images(value)) for value in range(5)]  # no await in between: one loop iteration
    answers = await asyncio.gather(*futures)
    assert [firsts(rows) for rows in answers] == [[value] for value in range(5)]
    assert model.batch_sizes == [5]
    assert threads == [threading.current_thread()]


async def test_a_request_is_answered_once_for_all_its_images(batchers):
    batcher = batchers(EchoModel())
    future = batcher.submit(images(7, 8, 9))
    assert isinstance(future, asyncio.Future)
    assert firsts(await future) == [7, 8, 9]


async def test_cues_travel_with_their_images_and_mnist_format_ones_get_the_constant_cues(threaded):
    gate = threading.Event()
    seen: list[np.ndarray | None] = []

    class Recording(EchoModel):
        def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
            seen.append(None if cues is None else cues.copy())
            return super().predict(pixels, cues)

    model = Recording(gate=gate)
    batcher = threaded(model, max_batch_size=4)
    first = batcher.submit(images(0))  # holds the worker while the next ones queue up
    await asyncio.to_thread(model.entered.wait, 5)
    measured = np.arange(27, dtype=np.float32).reshape(3, 9)
    futures = [batcher.submit(images(1, 2)), batcher.submit(images(3, 4, 5), measured)]  # split 2 + 2 | 1
    gate.set()
    await asyncio.gather(first, *futures)
    assert model.batch_sizes == [1, 4, 1]
    assert seen[0] is None  # nothing but MNIST-format images: no cue matrix at all
    constant = np.array(MNIST_FORMAT_CUES, np.float32)
    assert seen[1] is not None and np.array_equal(seen[1], np.stack([constant, constant, measured[0], measured[1]]))
    assert seen[2] is not None and np.array_equal(seen[2], measured[2:])


async def test_batches_never_exceed_max_batch_size(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model, max_batch_size=4)
    first = batcher.submit(images(0))
    await asyncio.to_thread(model.entered.wait, 5)
    split = batcher.submit(images(*range(1, 10)))  # one request over three passes
    gate.set()
    assert firsts(await first) == [0]
    assert firsts(await split) == list(range(1, 10))
    assert model.batch_sizes == [1, 4, 4, 1]


async def test_on_the_loop_batches_never_exceed_max_batch_size_either(make_batcher):
    model = EchoModel()
    batcher = make_batcher(model, on_loop=True, max_batch_size=4)
    await wait_until(lambda: batcher.ready)
    answers = await asyncio.gather(batcher.submit(images(0)), batcher.submit(images(*range(1, 10))))
    assert [firsts(rows) for rows in answers] == [[0], list(range(1, 10))]
    assert model.batch_sizes == [4, 4, 2]


async def test_a_lone_image_does_not_wait_for_the_batch_window(batchers):
    batcher = batchers(EchoModel(), max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    start = time.perf_counter()
    assert firsts(await batcher.submit(images(3))) == [3]
    assert time.perf_counter() - start < 1.0


async def test_a_batch_is_held_open_for_reserved_images(batchers):
    model = EchoModel()
    batcher = batchers(model, max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    with batcher.reserve(1) as late, batcher.reserve(1) as early:
        first = early.submit(images(1))
        await asyncio.sleep(0.05)
        second = late.submit(images(2))
    answers = await asyncio.gather(first, second)
    assert [firsts(rows) for rows in answers] == [[1], [2]]
    assert model.batch_sizes == [2]


async def test_a_batch_is_held_open_at_most_max_batch_wait(batchers):
    model = EchoModel()
    batcher = batchers(model, max_batch_wait_ms=50)
    await wait_until(lambda: batcher.ready)
    with batcher.reserve(1), batcher.reserve(1) as early:  # the first reservation never submits in time
        start = time.perf_counter()
        assert firsts(await early.submit(images(1))) == [1]
        waited = time.perf_counter() - start
    assert 0.04 <= waited < 1.0
    assert model.batch_sizes == [1]


async def test_ending_a_reservation_releases_the_held_batch(batchers):
    model = EchoModel()
    batcher = batchers(model, max_batch_wait_ms=5000)
    await wait_until(lambda: batcher.ready)
    with batcher.reserve(1) as early:
        with batcher.reserve(1):  # a request whose image fails to decode: it never submits
            future = early.submit(images(1))
            await asyncio.sleep(0.05)
            assert not future.done()  # held open for the reserved image
            start = time.perf_counter()
        await future
    assert time.perf_counter() - start < 1.0
    assert model.batch_sizes == [1]


async def test_full_queue_refuses_new_images_all_or_nothing(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model, max_queue_size=2)
    running = batcher.submit(images(0))
    await asyncio.to_thread(model.entered.wait, 5)
    queued = [batcher.submit(images(1))]
    with pytest.raises(QueueFull):
        batcher.submit(images(2, 3))  # room for one only: none is queued
    queued.append(batcher.submit(images(2)))
    with pytest.raises(QueueFull):
        batcher.submit(images(4))
    gate.set()
    answers = await asyncio.gather(running, *queued)
    assert [firsts(rows) for rows in answers] == [[0], [1], [2]]


async def test_reserved_images_hold_queue_room_until_the_block_ends(batchers):
    batcher = batchers(EchoModel(), max_queue_size=3)
    with batcher.reserve(2):
        with pytest.raises(QueueFull):
            with batcher.reserve(2):  # refused before anyone spends CPU decoding it
                pass
        with pytest.raises(QueueFull):
            batcher.submit(images(0, 1))
    assert firsts(await batcher.submit(images(0, 1, 2))) == [0, 1, 2]


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
        future = reservation.submit(images(1, 2))
        with pytest.raises(ValueError, match="reservation of 0"):
            reservation.submit(images(3))  # a reservation submits once
    assert firsts(await future) == [1, 2]
    assert whole_queue_free()


async def test_a_refused_submission_gives_its_reservation_back(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate, fail_warm_up=True), max_queue_size=2)
    warm_up_gate.set()
    await wait_until(lambda: batcher.failure is not None)
    with batcher.reserve(2) as reservation:
        with pytest.raises(ModelUnavailable):
            reservation.submit(images(1, 2))
        with batcher.reserve(2):  # the room came back although nothing was queued
            pass


async def test_images_whose_request_gave_up_are_skipped(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model)
    running = batcher.submit(images(0))
    await asyncio.to_thread(model.entered.wait, 5)
    abandoned = batcher.submit(images(1, 2))
    kept = batcher.submit(images(3))
    abandoned.cancel()
    gate.set()
    answers = await asyncio.gather(running, kept)
    assert [firsts(rows) for rows in answers] == [[0], [3]]
    assert model.batch_sizes == [1, 1]


async def test_on_the_loop_images_whose_request_gave_up_are_skipped(make_batcher):
    model = EchoModel()
    batcher = make_batcher(model, on_loop=True)
    await wait_until(lambda: batcher.ready)
    abandoned = batcher.submit(images(1, 2))
    kept = batcher.submit(images(3))
    abandoned.cancel()
    assert firsts(await kept) == [3]
    assert model.batch_sizes == [1]


async def test_a_failed_forward_pass_fails_its_images_and_the_worker_goes_on(batchers):
    model = EchoModel(fail_predict=True)
    batcher = batchers(model)
    with pytest.raises(RuntimeError, match="stub forward failure"):
        await batcher.submit(images(1))
    model.fail_predict = False
    assert firsts(await batcher.submit(images(2))) == [2]


async def test_readiness_waits_for_warm_up(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate))
    queued = batcher.submit(images(5))  # accepted before readiness, answered after warm-up
    await asyncio.sleep(0.05)
    assert not batcher.ready and not queued.done()
    warm_up_gate.set()
    assert firsts(await queued) == [5] and batcher.ready


async def test_failed_warm_up_makes_the_model_unavailable(batchers):
    warm_up_gate = threading.Event()
    batcher = batchers(EchoModel(warm_up_gate=warm_up_gate, fail_warm_up=True))
    stranded = batcher.submit(images(1))
    warm_up_gate.set()
    with pytest.raises(ModelUnavailable, match="warm-up failed"):
        await stranded
    assert not batcher.ready and batcher.failure is not None
    with pytest.raises(ModelUnavailable):
        batcher.submit(images(2))


async def test_stop_finishes_queued_images_then_refuses_new_ones(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model)
    running = batcher.submit(images(0))
    await asyncio.to_thread(model.entered.wait, 5)
    queued = batcher.submit(images(1))
    stopping = asyncio.create_task(asyncio.to_thread(batcher.stop, 5))
    await asyncio.sleep(0.02)
    assert not batcher.ready
    with pytest.raises(ModelUnavailable):
        batcher.submit(images(2))
    gate.set()
    await stopping
    answers = await asyncio.gather(running, queued)
    assert [firsts(rows) for rows in answers] == [[0], [1]]


async def test_on_the_loop_stop_finishes_queued_images_then_refuses_new_ones(make_batcher):
    batcher = make_batcher(EchoModel(), on_loop=True)
    await wait_until(lambda: batcher.ready)
    queued = batcher.submit(images(1, 2))
    batcher.stop()  # as the app's shutdown does, on the loop, before the queued pass ran
    assert not batcher.ready
    with pytest.raises(ModelUnavailable):
        batcher.submit(images(3))
    assert firsts(await queued) == [1, 2]


async def test_metrics_record_batch_sizes_and_queue_depth(threaded):
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = threaded(model)
    registry = batcher.metrics.registry
    futures = [batcher.submit(images(0))]
    await asyncio.to_thread(model.entered.wait, 5)
    futures.append(batcher.submit(images(1, 2)))
    assert registry.get_sample_value("mnist_serve_queue_depth") == 2
    gate.set()
    await asyncio.gather(*futures)
    assert registry.get_sample_value("mnist_serve_batch_size_count") == 2
    assert registry.get_sample_value("mnist_serve_batch_size_sum") == 3
    assert registry.get_sample_value("mnist_serve_inference_duration_seconds_count") == 2
    assert registry.get_sample_value("mnist_serve_queue_wait_seconds_count") == 2  # one per request and pass
    assert registry.get_sample_value("mnist_serve_queue_depth") == 0
