"""The running parts of one app (settings, model, batcher, decode threads), started by its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from fastapi import Depends
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.batcher import DynamicBatcher
from app.config import Settings
from app.metrics import Metrics
from app.predictor import Model
from app.preprocess import ImageError, to_mnist_pixels
from app.request_parsing import BadItem
from mnist_model import normalize

log = logging.getLogger(__name__)

ModelFactory = Callable[[Settings], Model]


@dataclass(frozen=True)
class ModelInput:
    """One image ready for the model: its 28×28 uint8 pixels (white on black) and the normalised 1×28×28 tensor.

    The pixels are kept (784 bytes) so that a client may see what the model saw; nothing is encoded unless asked.
    """

    pixels: np.ndarray
    tensor: torch.Tensor


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

    async def preprocess(self, blobs: list[bytes | BadItem]) -> list[ModelInput | BadItem]:
        """Decode and normalise each image on the decode threads (PIL must not stall the event loop)."""
        loop = asyncio.get_running_loop()
        jobs = [
            loop.run_in_executor(self.decode_pool, self._preprocess_one, blob)
            if isinstance(blob, bytes)
            else _done(blob)
            for blob in blobs
        ]
        return list(await asyncio.gather(*jobs))

    def _preprocess_one(self, data: bytes) -> ModelInput | BadItem:
        metadata = self.model.metadata
        try:  # app.preprocess.preprocess in two steps, keeping the uint8 pixels
            pixels = to_mnist_pixels(data, max_pixels=self.settings.max_image_pixels)
            return ModelInput(pixels, normalize(torch.from_numpy(pixels), metadata.mean, metadata.std).unsqueeze(0))
        except ImageError as exc:
            return BadItem(exc.status_code, str(exc))
        except Exception:  # a decoder bug must not turn one user's bad file into a 500 for the request
            log.exception("preprocess raised something other than ImageError; treating the image as undecodable")
            return BadItem(400, "the image could not be decoded")


async def get_service(request: Request) -> Service:
    """FastAPI dependency: the app's running service (503 while it is starting or stopped).

    `async` on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request.
    """
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "the service is starting; retry shortly", headers={"Retry-After": "1"})
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
"""Route parameter type for the running service."""


async def _done(value: BadItem) -> BadItem:
    return value
