"""The batching step: concurrent requests' images are merged into one forward pass on a worker thread.

Policy (why there is no fixed delay): the worker takes whatever is queued the moment it is free. While a
forward pass runs, new images pile up and form the next batch by themselves, so a lone request never waits for
company. The only deliberate wait: when other requests have announced images that are still being decoded, the
worker holds the batch open for them, at most `max_batch_wait_ms` after the batch's oldest image arrived.

The event loop only appends to a bounded queue and awaits futures; the model runs on the worker thread, so a
forward pass never blocks the loop. A full queue refuses new images (`QueueFull` → 503) instead of growing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from app.metrics import Metrics
from app.predictor import Model

log = logging.getLogger(__name__)

Probabilities = list[float]


class QueueFull(Exception):
    """The queue cannot take these images now; the client should retry after `retry_after_s` seconds."""

    retry_after_s = 1


class ModelUnavailable(Exception):
    """The model cannot answer: its warm-up failed or the service is shutting down."""


@dataclass(eq=False)
class _Item:
    image: torch.Tensor
    future: asyncio.Future[Probabilities]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Runs `model.predict` on batches of up to `max_batch_size` images on one worker thread.

    Call `start()` (warm-up then serving), `submit()` from the event loop, and `stop()` at shutdown.
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
        self.forward_passes = 0
        self.failure: BaseException | None = None
        self._queue: deque[_Item] = deque()
        self._announced = 0
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

    def announce(self, count: int) -> None:
        """Say that `count` images are being decoded and will be submitted (or withdrawn) soon.

        Announced images count against `max_queue_size`, so an overloaded server refuses (`QueueFull`) before
        spending CPU on decoding images it could not queue anyway.
        """
        with self._cond:
            if len(self._queue) + self._announced + count > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            self._announced += count

    def withdraw(self, count: int) -> None:
        """Take back announced images that will never be submitted (their request failed before that)."""
        with self._cond:
            self._announced -= count
            self._cond.notify()

    def submit(self, images: Sequence[torch.Tensor], *, announced: int = 0) -> list[asyncio.Future[Probabilities]]:
        """Queue preprocessed 1×28×28 images, all or none; returns one future per image, resolved in order.

        `announced` is how many images this request announced (bad images count too: they are withdrawn here).
        Raises `QueueFull` or `ModelUnavailable`. Call it on the event loop that will await the futures.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            self._announced -= announced
            self._cond.notify()
            if self.failure is not None or self._stopping:
                raise ModelUnavailable(
                    "the model is not available (warm-up failed or shutting down); see the server log"
                )
            if len(self._queue) + self._announced + len(images) > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            items = [_Item(image, loop.create_future(), loop) for image in images]
            self._queue.extend(items)
            depth = len(self._queue)
        self.metrics.queue_depth.set(depth)
        return [item.future for item in items]

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
        """Block until images are queued, take up to a full batch, then wait for announced ones if allowed."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            batch = self._take(self.max_batch_size)
            deadline = batch[0].enqueued + self.max_batch_wait_s
            while len(batch) < self.max_batch_size and self._announced > 0 and not self._stopping:
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
        self.forward_passes += 1
        self.metrics.batch_size.observe(len(live))
        self.metrics.inference_seconds.observe(time.perf_counter() - start)
        _settle(live, rows=rows)


def _settle(items: list[_Item], *, rows: list[Probabilities] | None = None, error: BaseException | None = None) -> None:
    """Resolve futures on their own loops, one wake-up per loop rather than one per image."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Probabilities | None]]] = {}
    for index, item in enumerate(items):
        by_loop.setdefault(item.loop, []).append((item, rows[index] if rows is not None else None))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, pairs, error)
        except RuntimeError:  # the loop closed: nobody is left to answer
            pass


def _resolve(pairs: list[tuple[_Item, Probabilities | None]], error: BaseException | None) -> None:
    for item, row in pairs:
        if item.future.done():  # timed out and cancelled meanwhile
            continue
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(row)
