"""The batching step: concurrent requests' images are merged into one forward pass.

Policy (why there is no fixed delay): a batch is formed from whatever is queued the moment the model is free.
While a forward pass runs, new images pile up and form the next batch by themselves, so a lone request never
waits for company. The only deliberate wait: when other requests have reserved room for images still being
decoded, the batch is held open for them, at most `max_batch_wait_ms` after its oldest image arrived.

Where the forward pass runs (`on_loop`):
- on a worker thread of its own (the default): the event loop only appends to the queue and awaits; a forward
  pass never blocks it, so HTTP keeps being served meanwhile (GPUs, several CPU threads per process);
- on the event loop itself: no thread hand-off, no cross-thread wake-up, no GIL ping-pong. Cheaper where the
  process has one CPU to itself (one torch thread): there the loop could not have done anything else meanwhile.

A request submits all its images at once (`submit(pixels, cues)`: uint8 N×28×28 and, for the digit gate, their
cues, None when all are MNIST-format) and gets one future for all their rows: one wake-up per request, however
many images, and per event loop one per forward pass. A full queue refuses new images (`QueueFull` → 503)
instead of growing.

A request reserves queue room for its images before decoding them (`with batcher.reserve(n) as reservation`),
so an overloaded server refuses before spending CPU on images it could not queue anyway, and the batcher knows
to hold a batch open for them. Leaving the `with` block returns whatever was not submitted, on every path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.errors import ModelUnavailable, QueueFull
from app.gate import stack_cues
from app.metrics import Metrics
from app.predictor import Model

log = logging.getLogger(__name__)

Probabilities = list[float]


@dataclass(eq=False, slots=True)
class _Submission:
    """One request's images (uint8 N×28×28, with their N×9 cues or None: see `Model.predict`) and the future that
    gets all their rows, in order."""

    pixels: np.ndarray
    cues: np.ndarray | None
    future: asyncio.Future[list[Probabilities]]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    taken: int = 0  # images handed to a forward pass so far (a big submission may span several)
    rows: list[Probabilities] = field(default_factory=list)


_Slice = tuple[_Submission, int, int]
"""Images `start:stop` of a submission, as they go into one forward pass."""


class DynamicBatcher:
    """Runs `model.predict` on batches of up to `max_batch_size` images, on a worker thread or the event loop.

    Call `start()` (warm-up, then serving); from the event loop, `reserve()` then submit through the reservation
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
        on_loop: bool = False,
    ) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_batch_wait_s = max_batch_wait_ms / 1000
        self.max_queue_size = max_queue_size
        self.metrics = metrics or Metrics()
        self.on_loop = on_loop
        self.failure: BaseException | None = None
        self._queue: deque[_Submission] = deque()
        self._queued = 0  # images in the queue, not yet handed to a forward pass
        self._reserved = 0
        self._stopping = False
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._warm_up if on_loop else self._run, name="mnist-batcher", daemon=True
        )
        # on_loop only, touched on the loop thread only: a drain is scheduled; the queue length it was scheduled at
        self._drain_pending = False
        self._drain_mark = 0
        self._timer: asyncio.TimerHandle | None = None
        self.metrics.queue_depth.set_function(lambda: self._queued)  # read at scrape time, not kept per request

    @property
    def ready(self) -> bool:
        """True once the warm-up forward pass has run and until shutdown starts."""
        return self._ready.is_set() and not self._stopping

    def start(self) -> None:
        """Start the thread that warms the model up (and, unless `on_loop`, then serves the queue)."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new images, finish what is queued, and wait for the worker (at most `timeout_s`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.on_loop and self._ready.is_set():  # nobody else will run what is still queued
            while batch := self._take(self.max_batch_size):
                self._forward(batch)

    def reserve(self, count: int) -> Reservation:
        """Hold queue room for `count` images that are being decoded: `with batcher.reserve(n) as reservation:`,
        then submit them through the reservation.

        Raises `QueueFull` at once when the room is not there. Reserved images count against `max_queue_size`,
        and a batch is held open for them (at most `max_batch_wait_ms`). Leaving the block, by any path (an
        exception, a cancelled request), returns the room that was not submitted.
        """
        with self._cond:
            if self._queued + self._reserved + count > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            self._reserved += count
        return Reservation(self, count)

    def submit(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> asyncio.Future[list[Probabilities]]:
        """Queue MNIST-format images (uint8 N×28×28; their `cues` as `Model.predict` takes them) without a
        reservation, all or none.

        The future gets one probability row per image, in order. Cancelling it drops the images that have not
        reached the model yet. Raises `QueueFull` or `ModelUnavailable`. Call it on the event loop that will
        await the future.
        """
        return self._enqueue(pixels, cues, release=0)

    def _enqueue(
        self, pixels: np.ndarray, cues: np.ndarray | None, *, release: int
    ) -> asyncio.Future[list[Probabilities]]:
        """Give back `release` reserved places, then queue `pixels`, all or none (raising refuses them all)."""
        loop = asyncio.get_running_loop()
        count = len(pixels)
        with self._cond:
            self._reserved -= release
            if not self.on_loop:
                self._cond.notify()
            if self.failure is not None or self._stopping:
                raise ModelUnavailable(
                    "the model is not available (warm-up failed or shutting down); see the server log"
                )
            if self._queued + self._reserved + count > self.max_queue_size:
                raise QueueFull(f"the queue is full ({self.max_queue_size} images); retry shortly")
            submission = _Submission(pixels, cues, loop.create_future(), loop)
            if count:
                self._queue.append(submission)
                self._queued += count
        if not count:
            submission.future.set_result([])
        if self.on_loop and (count or release):
            self._schedule_drain(loop)
        return submission.future

    def _release(self, count: int) -> None:
        with self._cond:
            self._reserved -= count
            self._cond.notify()  # a batch may be held open for these
        if self.on_loop:
            try:
                self._schedule_drain(asyncio.get_running_loop())
            except RuntimeError:  # released off the loop: the pending timer runs the batch
                pass

    # --- forming batches (both modes) -------------------------------------------------------------------

    def _hold_open_s(self) -> float:
        """Seconds to hold the queued images back for reserved ones still being decoded; 0: run now.

        Call with the lock held and a non-empty queue.
        """
        if self._queued >= self.max_batch_size or self._reserved <= 0 or self._stopping:
            return 0.0
        return self._queue[0].enqueued + self.max_batch_wait_s - time.perf_counter()

    def _take(self, room: int) -> list[_Slice]:
        """Up to `room` queued images, oldest first; the images of requests that gave up are dropped."""
        with self._cond:
            slices: list[_Slice] = []
            while room and self._queue:
                submission = self._queue[0]
                start = submission.taken
                stop = min(len(submission.pixels), start + room)
                if submission.future.done():  # its request gave up: its images never reach the model
                    stop = len(submission.pixels)
                else:
                    slices.append((submission, start, stop))
                    room -= stop - start
                submission.taken = stop
                self._queued -= stop - start
                if stop == len(submission.pixels):
                    self._queue.popleft()
        return slices

    def _forward(self, batch: list[_Slice]) -> None:
        """One forward pass for the images whose request still waits (given-up ones are skipped)."""
        live = [piece for piece in batch if not piece[0].future.done()]
        if not live:
            return
        start = time.perf_counter()
        for submission, _, _ in live:
            self.metrics.queue_wait_seconds.observe(start - submission.enqueued)
        pixels = np.concatenate([submission.pixels[first:stop] for submission, first, stop in live])
        cues = stack_cues([(None if s.cues is None else s.cues[first:stop], stop - first) for s, first, stop in live])
        try:
            rows = self.model.predict(pixels, cues).tolist()
        except Exception as exc:  # noqa: BLE001 - a failed pass fails its own requests, never the worker
            log.exception("forward pass over %d images failed", len(pixels))
            _settle([submission for submission, _, _ in live], error=exc)
            return
        self.metrics.batch_size.observe(len(pixels))
        self.metrics.inference_seconds.observe(time.perf_counter() - start)
        answered = []
        offset = 0
        for submission, first, stop in live:
            submission.rows.extend(rows[offset : offset + stop - first])
            offset += stop - first
            if stop == len(submission.pixels):
                answered.append(submission)
        _settle(answered)

    # --- worker thread mode -----------------------------------------------------------------------------

    def _run(self) -> None:
        if not self._warm_up():
            return
        while (batch := self._next_batch()) is not None:
            self._forward(batch)

    def _next_batch(self) -> list[_Slice] | None:
        """Block until images are queued and the batch is not held open any longer; None when stopped."""
        with self._cond:
            while True:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return None
                hold = self._hold_open_s()
                if hold <= 0:
                    break
                self._cond.wait(hold)
        return self._take(self.max_batch_size)

    def _warm_up(self) -> bool:
        """Warm the model up (on this thread); True when it is ready. On the loop, queued images are kicked off."""
        try:
            self.model.warm_up()
        except BaseException as exc:  # any failure makes the model unusable; requests must hear it
            log.exception("model warm-up failed; the service stays unready")
            with self._cond:
                self.failure = exc
                stranded = list(self._queue)
                self._queue.clear()
                self._queued = 0
            _settle(stranded, error=ModelUnavailable(f"model warm-up failed: {exc}"))
            return False
        log.info(
            "model warmed up; batching up to %d images on %s",
            self.max_batch_size,
            "the event loop" if self.on_loop else "a worker thread",
        )
        self._ready.set()
        if self.on_loop:
            with self._cond:
                loops = {submission.loop for submission in self._queue}
            for loop in loops:  # requests that arrived during the warm-up
                _call_soon(loop, self._schedule_drain, loop)
        return True

    # --- event loop mode --------------------------------------------------------------------------------

    def _schedule_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the next batch soon on `loop`: after the requests already runnable reached the queue."""
        if not self._drain_pending and self._ready.is_set():
            self._drain_pending = True
            self._drain_mark = self._queued
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        """One forward pass on the loop, then yield to it (I/O, answers) before the next one.

        While the queue keeps growing between two turns of the loop (requests already on the wire are being
        read), the pass waits one more turn, up to a full batch or `max_batch_wait_ms`: this forms the batches
        that a worker thread gets for free while the loop holds the GIL. A lone request never waits: nothing
        joined it since the drain was scheduled.
        """
        self._drain_pending = False
        with self._cond:
            if not self._queue:
                return
            hold = self._hold_open_s()
            growing = (
                self._drain_mark < self._queued < self.max_batch_size
                and time.perf_counter() - self._queue[0].enqueued < self.max_batch_wait_s
            )
        loop = asyncio.get_running_loop()
        if hold > 0:
            if self._timer is None or self._timer.cancelled() or self._timer.when() <= loop.time():
                self._timer = loop.call_later(hold, self._schedule_drain, loop)
            return
        if growing:
            self._schedule_drain(loop)
            return
        batch = self._take(self.max_batch_size)
        if batch:
            self._forward(batch)
        if self._queued:
            self._schedule_drain(loop)


class Reservation:
    """Queue room held for one request's images while they are decoded; made by `DynamicBatcher.reserve`.

    A context manager: leaving the `with` block releases what was not submitted.
    """

    __slots__ = ("_batcher", "_held")

    def __init__(self, batcher: DynamicBatcher, count: int) -> None:
        self._batcher = batcher
        self._held = count

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def submit(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> asyncio.Future[list[Probabilities]]:
        """Queue the images that decoded (uint8 N×28×28, at most the reserved count; their `cues` as
        `Model.predict` takes them), all or none.

        Gives back the whole reservation, images that failed to decode included, even when it raises
        (`QueueFull`, `ModelUnavailable`); a reservation submits once. Call it on the event loop that will
        await the future.
        """
        if len(pixels) > self._held:
            raise ValueError(f"{len(pixels)} images submitted on a reservation of {self._held}")
        held, self._held = self._held, 0
        return self._batcher._enqueue(pixels, cues, release=held)

    def release(self) -> None:
        """Give back the room not submitted (called when the `reserve` block ends; a second call is a no-op)."""
        held, self._held = self._held, 0
        if held:
            self._batcher._release(held)


def _settle(submissions: list[_Submission], *, error: BaseException | None = None) -> None:
    """Resolve futures on their own loops: directly on the current one, else one wake-up per loop."""
    if not submissions:
        return
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    by_loop: dict[asyncio.AbstractEventLoop, list[_Submission]] = {}
    for submission in submissions:
        by_loop.setdefault(submission.loop, []).append(submission)
    for loop, group in by_loop.items():
        if loop is current:
            _resolve(group, error)
        else:
            _call_soon(loop, _resolve, group, error)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop closed: nobody is left to answer
        pass


def _resolve(submissions: list[_Submission], error: BaseException | None) -> None:
    for submission in submissions:
        if submission.future.done():  # timed out and cancelled meanwhile
            continue
        if error is not None:
            submission.future.set_exception(error)
        else:
            submission.future.set_result(submission.rows)
