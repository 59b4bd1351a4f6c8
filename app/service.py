"""The running parts of one app (settings, model, batcher, decode threads) and the one way to classify with them.

Every protocol is a thin translator over `Service`: `classify_images` takes encoded image files (preprocessed
like /predict), `classify_pixels` takes MNIST-format uint8 arrays (only normalised). Both reserve queue room
first, submit what could be preprocessed to the batcher, wait at most MNIST_SERVE_REQUEST_TIMEOUT_S, and
answer one `Classification` or `BadItem` per image, in order. What fails the request as a whole is raised as a
typed `app.errors.ServiceError` (`QueueFull`, `ModelUnavailable`, `ModelTimeout`, `NotReady`), which each
protocol renders in its own shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from fastapi import Depends
from starlette.requests import Request

from app.batcher import DynamicBatcher, Probabilities, Reservation
from app.config import Settings
from app.errors import ModelTimeout, ModelUnavailable, NotReady
from app.metrics import Metrics
from app.predictor import Model
from app.preprocess import BadItem, ImageError, to_mnist_pixels, to_model_input

log = logging.getLogger(__name__)

ModelFactory = Callable[[Settings], Model]
MNIST_SHAPE = (28, 28)


@dataclass(frozen=True, eq=False)
class Classification:
    """The model's answer for one image.

    `probabilities`: one per digit 0–9, summing to 1. `pixels`: the 28×28 uint8 image the model saw (white ink
    on black, as MNIST; read-only), so a client can show what its upload became. Compared by identity: it holds
    an array.
    """

    probabilities: Probabilities
    pixels: np.ndarray


Result = Classification | BadItem
"""One image's outcome: classified, or refused with its own status and message."""


@dataclass(frozen=True, eq=False)
class _Prepared:
    """An image ready for the model: its normalised 1×28×28 tensor and the uint8 pixels it came from."""

    tensor: torch.Tensor
    pixels: np.ndarray


@dataclass
class Service:
    """What the routes use. `start` loads the model (raising on a bad checkpoint) and starts the worker."""

    settings: Settings
    model: Model
    batcher: DynamicBatcher
    decode_pool: ThreadPoolExecutor

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
        )
        batcher.start()
        pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="mnist-decode")
        return cls(settings, model, batcher, pool)

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

        Each image is decoded and preprocessed on the decode threads (PIL must not stall the event loop); one
        that cannot be becomes a `BadItem` in its place. Raises `QueueFull`, `ModelUnavailable`, `ModelTimeout`.
        """
        with self.batcher.reserve(sum(isinstance(blob, bytes) for blob in blobs)) as reservation:
            prepared = await self._prepare_images(blobs)
            return await self._classify(reservation, prepared)

    async def classify_pixels(self, pixels: np.ndarray) -> list[Result]:
        """MNIST-format images (uint8 N×28×28, white ink on black) → one `Classification` per image, in order.

        The pixels skip image preprocessing: they are only normalised with the checkpoint's mean/std. Raises
        `ValueError` for another shape or dtype (a protocol checks its input first), and like `classify_images`.
        """
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != MNIST_SHAPE:
            raise ValueError(f"expected uint8 pixels of shape N×28×28, got {pixels.dtype} {tuple(pixels.shape)}")
        own = np.array(pixels, order="C")  # the caller's buffer may change (or be read-only, which torch warns about)
        metadata = self.model.metadata
        tensors = to_model_input(own, mean=metadata.mean, std=metadata.std).unbind(0)
        own.flags.writeable = False
        prepared: list[_Prepared | BadItem] = [
            _Prepared(tensor, image) for tensor, image in zip(tensors, own, strict=True)
        ]
        with self.batcher.reserve(len(prepared)) as reservation:
            return await self._classify(reservation, prepared)

    async def _classify(self, reservation: Reservation, prepared: list[_Prepared | BadItem]) -> list[Result]:
        """Queue the prepared images on `reservation` and wait (bounded) for their rows; bad items keep their place."""
        good = [item.tensor for item in prepared if isinstance(item, _Prepared)]
        if not good:  # nothing for the model: the per-image errors are the whole answer
            return [item for item in prepared if isinstance(item, BadItem)]
        futures = reservation.submit(good)
        timeout_s = self.settings.request_timeout_s
        try:
            rows = await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
        except TimeoutError:
            raise ModelTimeout(
                f"no answer from the model within {timeout_s:g} s (MNIST_SERVE_REQUEST_TIMEOUT_S): "
                "the server is overloaded, retry later"
            ) from None
        finally:
            for future in futures:
                future.cancel()  # no-op when answered; otherwise the worker skips the image
        answers = iter(rows)
        return [item if isinstance(item, BadItem) else Classification(next(answers), item.pixels) for item in prepared]

    async def _prepare_images(self, blobs: Sequence[bytes | BadItem]) -> list[_Prepared | BadItem]:
        """Preprocess the image bytes on the decode threads, concurrently; refused items keep their place."""
        loop = asyncio.get_running_loop()
        jobs = [
            loop.run_in_executor(self.decode_pool, self._prepare_image, blob)
            for blob in blobs
            if isinstance(blob, bytes)
        ]
        done = iter(await asyncio.gather(*jobs))
        return [next(done) if isinstance(blob, bytes) else blob for blob in blobs]

    def _prepare_image(self, data: bytes) -> _Prepared | BadItem:
        metadata = self.model.metadata
        try:
            pixels = to_mnist_pixels(data, max_pixels=self.settings.max_image_pixels)
            tensor = to_model_input(pixels, mean=metadata.mean, std=metadata.std)
        except ImageError as exc:
            return BadItem.from_error(exc)
        except Exception:  # a decoder bug must not turn one user's bad file into a 500 for the request
            log.exception("preprocess raised something other than ImageError; treating the image as undecodable")
            return BadItem(400, "the image could not be decoded")
        pixels.flags.writeable = False
        return _Prepared(tensor, pixels)


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
