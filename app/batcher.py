"""The batching step: concurrent requests' images are merged into one forward pass on a worker thread.

Policy (why there is no fixed delay): the worker takes whatever is queued the moment it is free. While a
forward pass runs, new images pile up and form the next batch by themselves, so a lone request never waits for
company. The only deliberate wait: when other requests have reserved room for images still being decoded, the
worker holds the batch open for them, at most `max_batch_wait_ms` after the batch's oldest image arrived.

The event loop only appends to a bounded queue and awaits futures; the model runs on the worker thread, so a
forward pass never blocks the loop. A full queue refuses new images (`QueueFull` → 503) instead of growing.

A request reserves queue room for its images before decoding them (`with batcher.reserve(n) as reservation`),
so an overloaded server refuses before spending CPU on images it could not queue anyway, and the worker knows
to hold a batch open for them. Leaving the `with` block returns whatever was not submitted, on every path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from app.errors import ModelUnavailable, QueueFull
from app.metrics import Metrics
from app.predictor import Model

log = logging.getLogger(__name__)

Probabilities = list[float]


@dataclass(eq=False)
class _Item:
    image: torch.Tensor
    future: asyncio.Future[Probabilities]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Runs `model.predict` on batches of up to `max_batch_size` images on one worker thread.

    Call `start()` (warm-up then serving); from the event loop, `reserve()` then submit through the reservation
    (or `submit()` directly); `stop()` at shutdown.
    """

    def __init__(
        self,
        model: Model,
        *,
        max_batch_size: int,
        max_batch_wait_ms: float,
        max_queue_size: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_batch_wait_s = max_batch_wait_ms / 1000
        self.max_queue_size = max_queue_size
        self.metrics = metrics or Metrics()
        self.failure: BaseException | None = None
        self._queue: deque[_Item] = deque()
        self._reserved = 0
        self._stopping = False
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="mnist-batcher", daemon=True)

    @property
    def ready(self) -> bool:
        """True once the warm-up forward pass has run and until shutdown starts."""
        return self._ready.is_set() and not self._stopping

    def start(self) -> None:
        """Start the worker thread; it warms the model up first, then serves the queue."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new images, let the worker finish what is queued, and wait for it (at most `timeout_s`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @contextmanager
    def reserve(self, count: int) -> Iterator[Reservation]:
        """Hold queue room for `count` images that are being decoded; submit them through the reservation.

        Raises `QueueFull` at once when the room is not there. Reserved images count against `max_queue_size`,
        and the worker holds a batch open for them (at most `max_batch_wait_ms`). Leaving the block, by any
        path (an exception, a cancelled request), returns the room that was not submitted.
        """
        with self._cond:
            if len(self._queue) + self._reserved + count > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            self._reserved += count
        reservation = Reservation(self, count)
        try:
            yield reservation
        finally:
            reservation.release()

    def submit(self, images: Sequence[torch.Tensor]) -> list[asyncio.Future[Probabilities]]:
        """Queue preprocessed 1×28×28 images without a reservation, all or none; one future per image, in order.

        Raises `QueueFull` or `ModelUnavailable`. Call it on the event loop that will await the futures.
        """
        return self._enqueue(images, release=0)

    def _enqueue(self, images: Sequence[torch.Tensor], *, release: int) -> list[asyncio.Future[Probabilities]]:
        """Give back `release` reserved places, then queue `images`, all or none (raising refuses them all)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            self._reserved -= release
            self._cond.notify()
            if self.failure is not None or self._stopping:
                raise ModelUnavailable(
                    "the model is not available (warm-up failed or shutting down); see the server log"
                )
            if len(self._queue) + self._reserved + len(images) > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            items = [_Item(image, loop.create_future(), loop) for image in images]
            self._queue.extend(items)
            depth = len(self._queue)
        self.metrics.queue_depth.set(depth)
        return [item.future for item in items]

    def _release(self, count: int) -> None:
        with self._cond:
            self._reserved -= count
            self._cond.notify()  # the worker may be holding a batch open for these

    # --- worker thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.model.warm_up()
        except BaseException as exc:  # any failure makes the model unusable; requests must hear it
            log.exception("model warm-up failed; the service stays unready")
            with self._cond:
                self.failure = exc
                stranded = list(self._queue)
                self._queue.clear()
            _settle(stranded, error=ModelUnavailable(f"model warm-up failed: {exc}"))
            return
        log.info("model warmed up; batching up to %d images", self.max_batch_size)
        self._ready.set()
        while (batch := self._next_batch()) is not None:
            self._forward(batch)

    def _next_batch(self) -> list[_Item] | None:
        """Block until images are queued, take up to a full batch, then wait for reserved ones if allowed."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            batch = self._take(self.max_batch_size)
            deadline = batch[0].enqueued + self.max_batch_wait_s
            while len(batch) < self.max_batch_size and self._reserved > 0 and not self._stopping:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                batch.extend(self._take(self.max_batch_size - len(batch)))
            depth = len(self._queue)
        self.metrics.queue_depth.set(depth)
        return batch

    def _take(self, count: int) -> list[_Item]:
        return [self._queue.popleft() for _ in range(min(count, len(self._queue)))]

    def _forward(self, batch: list[_Item]) -> None:
        """One forward pass for the images whose request still waits (timed-out ones are skipped)."""
        live = [item for item in batch if not item.future.done()]
        if not live:
            return
        start = time.perf_counter()
        for item in live:
            self.metrics.queue_wait_seconds.observe(start - item.enqueued)
        try:
            rows = self.model.predict([item.image for item in live]).tolist()
        except Exception as exc:  # noqa: BLE001 - a failed pass fails its own requests, never the worker
            log.exception("forward pass over %d images failed", len(live))
            _settle(live, error=exc)
            return
        self.metrics.batch_size.observe(len(live))
        self.metrics.inference_seconds.observe(time.perf_counter() - start)
        _settle(live, rows=rows)


class Reservation:
    """Queue room held for one request's images while they are decoded; made by `DynamicBatcher.reserve`."""

    def __init__(self, batcher: DynamicBatcher, count: int) -> None:
        self._batcher = batcher
        self._held = count

    def submit(self, images: Sequence[torch.Tensor]) -> list[asyncio.Future[Probabilities]]:
        """Queue the images that decoded (at most the reserved count), all or none; one future per image.

        Gives back the whole reservation, images that failed to decode included, even when it raises
        (`QueueFull`, `ModelUnavailable`); a reservation submits once. Call it on the event loop that will
        await the futures.
        """
        if len(images) > self._held:
            raise ValueError(f"{len(images)} images submitted on a reservation of {self._held}")
        held, self._held = self._held, 0
        return self._batcher._enqueue(images, release=held)

    def release(self) -> None:
        """Give back the room not submitted (called when the `reserve` block ends; a second call is a no-op)."""
        held, self._held = self._held, 0
        if held:
            self._batcher._release(held)


def _settle(items: list[_Item], *, rows: list[Probabilities] | None = None, error: BaseException | None = None) -> None:
    """Resolve futures on their own loops, one wake-up per loop rather than one per image.

    Each item gets its row of `rows` (one per item, in order), or all of them get `error`.
    """
    outcomes: Sequence[Probabilities | BaseException]
    if rows is not None:
        outcomes = rows
    elif error is not None:
        outcomes = [error] * len(items)
    else:
        raise ValueError("settling needs the rows or the error")
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Probabilities | BaseException]]] = {}
    for index, item in enumerate(items):
        by_loop.setdefault(item.loop, []).append((item, outcomes[index]))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, pairs)
        except RuntimeError:  # the loop closed: nobody is left to answer
            pass


def _resolve(pairs: list[tuple[_Item, Probabilities | BaseException]]) -> None:
    for item, outcome in pairs:
        if item.future.done():  # timed out and cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            item.future.set_exception(outcome)
        else:
            item.future.set_result(outcome)
