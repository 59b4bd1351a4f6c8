"""Errors of the service as a whole, typed where they happen and turned into HTTP answers here, once.

A `ServiceError` says why a request cannot be answered now (not ready, queue full, model unavailable, no
answer in time) and carries its own status code and `Retry-After`; the batcher and the service raise them,
never an HTTP exception. `error_response` renders one in a protocol's shape: `{"detail": ...}` for the native
API (FastAPI's own shape, so 404, 405 and 422 look the same), `{"error": ...}` for the Open Inference Protocol.
An image's own failure is not here: it is `app.preprocess.ImageError` / `BadItem`, answered per image.

The bug path is here too: an unexpected exception becomes a logged 500 with JSON; the server lives on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

ErrorKey = Literal["detail", "error"]
"""The key of the message in an error body: "detail" natively, "error" in Open Inference Protocol v2."""


class ServiceError(Exception):
    """The service cannot answer this request now. The message is safe to show and says what to do.

    Subclasses fix `status_code` and `retry_after_s` (seconds a client should wait before retrying; None: no
    `Retry-After`, retrying soon will not help).
    """

    status_code: ClassVar[int] = 503
    retry_after_s: ClassVar[int | None] = None

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers of the answer: `Retry-After` when a retry can help."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class NotReady(ServiceError):
    """The service is starting (model loading or warming up) or stopping."""

    retry_after_s = 1


class QueueFull(ServiceError):
    """The queue cannot take these images now (MNIST_SERVE_MAX_QUEUE_SIZE)."""

    retry_after_s = 1


class ModelUnavailable(ServiceError):
    """The model cannot answer: its warm-up failed or the service is shutting down."""

    retry_after_s = 5


class ModelTimeout(ServiceError):
    """No answer from the model within MNIST_SERVE_REQUEST_TIMEOUT_S (the server is overloaded)."""

    status_code = 504


def error_response(error: ServiceError, *, key: ErrorKey = "detail") -> JSONResponse:
    """The HTTP answer for `error` in a protocol's shape: `{key: message}`, its status and headers."""
    return JSONResponse({key: str(error)}, status_code=error.status_code, headers=error.headers)


async def service_error(request: Request, exc: Exception) -> JSONResponse:
    """Native routes: a `ServiceError` is answered as `{"detail": ...}` with its status and Retry-After."""
    assert isinstance(exc, ServiceError)  # registered for ServiceError only
    return error_response(exc)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a bad request: log it with its traceback and tell the client without leaking internals."""
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error; the server log has the details"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(Exception, unexpected_error)
