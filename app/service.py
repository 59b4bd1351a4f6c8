"""The running parts of one app (settings, model, batcher, decode threads) and the one way to classify with them.

Every protocol is a thin translator over `Service`: `classify_images` takes encoded image files (preprocessed
like /predict), `classify_image` one such file (/predict's, by a shorter path), `classify_pixels` MNIST-format uint8
arrays (only normalised, by the model). Each reserves queue room first, submits what could be preprocessed to the
batcher as one submission, waits at most MNIST_SERVE_REQUEST_TIMEOUT_S (`app.deadlines`), and answers one
`Classification` or `BadItem` per image, in order. What fails the request as a whole is raised as a typed
`app.errors.ServiceError` (`QueueFull`, `ModelUnavailable`, `ModelTimeout`, `NotReady`), which each protocol renders
in its own shape.

Where the work runs: small images (MNIST_SERVE_INLINE_DECODE_MAX_PIXELS, 28×28 by default: the MNIST-format
pass-through costs less than a thread hop) are preprocessed right on the event loop, bigger ones on the decode
threads; the forward pass runs where `MNIST_SERVE_FORWARD_ON` says (see `app.batcher`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends
from starlette.requests import Request

from app.batcher import DynamicBatcher, Probabilities, Reservation
from app.config import Settings
from app.deadlines import Deadlines
from app.errors import ModelTimeout, ModelUnavailable, NotReady
from app.gate import cue_row, stack_cue_rows
from app.metrics import Metrics
from app.predictor import Model
from app.preprocess import BadItem, ImageError, mnist_pngs, to_mnist_pixels
from app.preprocess.cues import CueNotes

log = logging.getLogger(__name__)

ModelFactory = Callable[[Settings], Model]
MNIST_SHAPE = (28, 28)


@dataclass(frozen=True, eq=False)
class Classification:
    """The model's answer for one image.

    `probabilities`: one per digit 0–9, summing to 1. `pixels`: the 28×28 uint8 image the model saw (white ink
    on black, as MNIST; read-only), so a client can show what its upload became. `is_digit`: the digit gate's
    verdict (`app.gate`), None when the checkpoint has no gate. Compared by identity: it holds an array.
    """

    probabilities: Probabilities
    pixels: np.ndarray
    is_digit: bool | None = None


Prepared = tuple[np.ndarray, np.ndarray | None]
"""An image ready for the model: its 28×28 pixels and its cues for the digit gate (`app.gate.cue_row`: None for
an MNIST-format upload, and for every upload when the model has no gate)."""


Result = Classification | BadItem
"""One image's outcome: classified, or refused with its own status and message."""


@dataclass
class Service:
    """What the routes use. `start` loads the model (raising on a bad checkpoint) and starts the worker."""

    settings: Settings
    model: Model
    batcher: DynamicBatcher
    decode_pool: ThreadPoolExecutor
    deadlines: Deadlines

    @classmethod
    def start(cls, settings: Settings, model_factory: ModelFactory, metrics: Metrics) -> Service:
        """Load the model and start warming it up on the batcher's thread (then the app is ready)."""
        model = model_factory(settings)
        batcher = DynamicBatcher(
            model,
            max_batch_size=settings.max_batch_size,
            max_batch_wait_ms=settings.max_batch_wait_ms,
            max_queue_size=settings.max_queue_size,
            metrics=metrics,
            on_loop=forward_on_loop(settings, model),
        )
        batcher.start()
        pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="mnist-decode")
        deadlines = Deadlines(settings.request_timeout_s, _timeout_error(settings.request_timeout_s))
        return cls(settings, model, batcher, pool, deadlines)

    def stop(self) -> None:
        """Finish queued work, then release the threads."""
        self.batcher.stop()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)

    def check_ready(self) -> None:
        """Return when the model is warmed up and serving; else raise `ModelUnavailable` or `NotReady`."""
        if self.batcher.failure is not None:
            raise ModelUnavailable(f"model warm-up failed: {self.batcher.failure}")
        if not self.batcher.ready:
            raise NotReady("the model is loading or warming up")

    async def classify_images(self, blobs: Sequence[bytes | BadItem]) -> list[Result]:
        """Encoded image files → one result per item, in order; items already refused stay as they are.

        Each image is decoded and preprocessed (small ones on the event loop, others on the decode threads); one
        that cannot be becomes a `BadItem` in its place. Raises `QueueFull`, `ModelUnavailable`, `ModelTimeout`.
        """
        with self.batcher.reserve(sum(isinstance(blob, bytes) for blob in blobs)) as reservation:
            prepared = await self._prepare_images(blobs)
            return await self._classify(reservation, prepared)

    async def classify_image(self, data: bytes) -> Result:
        """One encoded image file (/predict's) → its result: what `classify_images([data])` answers, by a shorter
        path. Raises as `classify_images`.

        Why a path of its own: at c=64 on one core /predict's own Python is a large share of each request, and every
        call and list the batch path makes for a list of one cost a few µs there, the code out of the caches between
        requests (measured with `benchmarks/app_overhead.py`).
        """
        with self.batcher.reserve(1) as reservation:
            prepared: Prepared | BadItem | bytes | None = self._mnist_upload(data)
            if prepared is None:
                prepared = self._prepare_inline(data)
            if isinstance(prepared, bytes):
                prepared = await self._prepare_on_threads(data)
            if isinstance(prepared, BadItem):
                return prepared
            pixels, cues = prepared
            [row] = await self._rows(reservation, pixels[None], None if cues is None else cues[None])
        probabilities, is_digit = self._answer(row)
        return Classification(probabilities, pixels, is_digit)

    async def classify_pixels(self, pixels: np.ndarray) -> list[Result]:
        """MNIST-format images (uint8 N×28×28, white ink on black) → one `Classification` per image, in order.

        The pixels skip image preprocessing: they are only normalised with the checkpoint's mean/std. Raises
        `ValueError` for another shape or dtype (a protocol checks its input first), and like `classify_images`.
        """
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != MNIST_SHAPE:
            raise ValueError(f"expected uint8 pixels of shape N×28×28, got {pixels.dtype} {tuple(pixels.shape)}")
        own = np.array(pixels, order="C")  # the caller's buffer may change after we return
        own.flags.writeable = False
        with self.batcher.reserve(len(own)) as reservation:
            # No cues: the gate treats the pixels as an MNIST-format upload's (they are, by contract).
            return await self._classify(reservation, [(image, None) for image in own])

    async def _classify(self, reservation: Reservation, prepared: list[Prepared | BadItem]) -> list[Result]:
        """Queue the prepared images on `reservation` as one submission and wait (bounded) for their rows; bad
        items keep their place."""
        good = [item for item in prepared if not isinstance(item, BadItem)]
        if not good:  # nothing for the model: the per-image errors are the whole answer
            return [item for item in prepared if isinstance(item, BadItem)]
        pixels = good[0][0][None] if len(good) == 1 else np.stack([item[0] for item in good])
        rows = await self._rows(reservation, pixels, stack_cue_rows([item[1] for item in good]))
        answers = map(self._answer, rows)
        return [item if isinstance(item, BadItem) else _classification(item, next(answers)) for item in prepared]

    async def _rows(self, reservation: Reservation, pixels: np.ndarray, cues: np.ndarray | None) -> list[Probabilities]:
        """Queue `pixels` (N×28×28, their `cues`) on `reservation` as one submission and wait, at most
        MNIST_SERVE_REQUEST_TIMEOUT_S, for the model's N rows."""
        future = reservation.submit(pixels, cues)
        # Timed out by failing the future itself (cheaper than asyncio.timeout's task cancellation); a future
        # that is done before its images reached the model makes the batcher skip them.
        self.deadlines.watch(future)
        try:
            return await future
        finally:
            future.cancel()  # no-op when answered; when this request is cancelled, its images are skipped

    def _answer(self, row: Probabilities) -> tuple[Probabilities, bool | None]:
        """(probabilities, is_digit) of one row of the model: with a gate, its score (the row's last value, taken
        off) against the gate's threshold."""
        gate = getattr(self.model, "digit_gate", None)
        return (row, None) if gate is None else (row, row.pop() >= gate.threshold)

    async def _prepare_images(self, blobs: Sequence[bytes | BadItem]) -> list[Prepared | BadItem]:
        """Preprocess the image bytes, small ones inline, the rest concurrently on the decode threads; refused
        items keep their place."""
        prepared = [self._prepare_inline(blob) if isinstance(blob, bytes) else blob for blob in self._take_mnist(blobs)]
        big = [(index, item) for index, item in enumerate(prepared) if isinstance(item, bytes)]
        if big:
            jobs = [self._prepare_on_threads(data) for _, data in big]
            for (index, _), item in zip(big, await asyncio.gather(*jobs), strict=True):
                prepared[index] = item
        return prepared  # type: ignore[return-value]  # every bytes item was replaced

    async def _prepare_on_threads(self, data: bytes) -> Prepared | BadItem:
        """`prepare_image` of `data` on a decode thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.decode_pool, prepare_image, data, self.settings.max_image_pixels, self._gated
        )

    def _take_mnist(self, blobs: Sequence[bytes | BadItem]) -> list[bytes | BadItem | Prepared]:
        """The uploads that are MNIST-format PNGs (what API clients mostly send), decoded together on the event
        loop by `mnist_pngs`: ~10 µs a file, a third of the per-file path's cost, which is what keeps
        /predict/batch model-bound. Everything else is left as it is for `_prepare_inline`."""
        if not self._mnist_inline:
            return list(blobs)  # the operator sent every decode to the threads
        found = iter(mnist_pngs([blob for blob in blobs if isinstance(blob, bytes)]))
        taken: list[bytes | BadItem | Prepared] = []
        for blob in blobs:
            pixels = next(found) if isinstance(blob, bytes) else None
            taken.append(blob if pixels is None else (pixels, None))
        return taken

    def _mnist_upload(self, data: bytes) -> Prepared | None:
        """`_take_mnist` of one upload: its pixels if it is an MNIST-format PNG decoded on the event loop, else None."""
        if not self._mnist_inline:
            return None
        [pixels] = mnist_pngs([data])
        return None if pixels is None else (pixels, None)

    @property
    def _mnist_inline(self) -> bool:
        """Whether MNIST-format PNGs are decoded on the event loop (MNIST_SERVE_INLINE_DECODE_MAX_PIXELS ≥ 28×28)."""
        return self.settings.inline_decode_max_pixels >= MNIST_SHAPE[0] * MNIST_SHAPE[1]

    def _prepare_inline(self, data: bytes) -> Prepared | BadItem | bytes:
        """Preprocess `data` on the event loop if it has at most MNIST_SERVE_INLINE_DECODE_MAX_PIXELS pixels;
        else give it back for the decode threads (the pixel count is read from the header, nothing decoded)."""
        inline, limit = self.settings.inline_decode_max_pixels, self.settings.max_image_pixels
        if inline >= limit:
            return prepare_image(data, limit, self._gated)
        if inline == 0:
            return data
        result = prepare_image(data, inline, self._gated)
        if isinstance(result, BadItem) and result.status_code == 413:
            return data  # too big for the loop, maybe not for the service
        return result

    @property
    def _gated(self) -> bool:
        """Whether the model has a digit gate (then uploads' cues are measured where they are preprocessed)."""
        return getattr(self.model, "digit_gate", None) is not None


def prepare_image(data: bytes, max_pixels: int, measure_cues: bool) -> Prepared | BadItem:
    """`to_mnist_pixels`, with the upload's cues for the gate when `measure_cues` (on the decode thread that did the
    preprocessing: the cues measured on the 28×28 result cost ~0.1 ms, kept off the event loop)."""
    notes = CueNotes()
    try:
        pixels = to_mnist_pixels(data, max_pixels, notes)
    except ImageError as exc:
        return BadItem.from_error(exc)
    except Exception:  # a decoder bug must not turn one user's bad file into a 500 for the request
        log.exception("preprocess raised something other than ImageError; treating the image as undecodable")
        return BadItem(400, "the image could not be decoded")
    pixels.flags.writeable = False
    return pixels, cue_row(notes.cues(pixels)) if measure_cues and notes.parts is not None else None


def _classification(item: Prepared, answer: tuple[Probabilities, bool | None]) -> Classification:
    return Classification(answer[0], item[0], answer[1])


def _timeout_error(timeout_s: float) -> Callable[[], ModelTimeout]:
    """What a request that waited `timeout_s` for the model fails with (a 504)."""

    def error() -> ModelTimeout:
        return ModelTimeout(
            f"no answer from the model within {timeout_s:g} s (MNIST_SERVE_REQUEST_TIMEOUT_S): "
            "the server is overloaded, retry later"
        )

    return error


def forward_on_loop(settings: Settings, model: Model) -> bool:
    """MNIST_SERVE_FORWARD_ON: `auto` runs forward passes on the event loop for a CPU model with one torch
    thread (the process has a core to itself: a hand-off to a worker thread only costs), else on a worker."""
    if settings.forward_on != "auto":
        return settings.forward_on == "loop"
    runtime = model.describe()
    return runtime.get("device") == "cpu" and runtime.get("num_threads") == 1


async def get_service(request: Request) -> Service:
    """FastAPI dependency: the app's running service (`NotReady`, a 503, while it is starting or stopped).

    `async` on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request.
    """
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        raise NotReady("the service is not running (starting or shutting down); retry shortly")
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
"""Route parameter type for the running service."""
