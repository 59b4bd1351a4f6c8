"""Errors of the service as a whole, typed where they happen and turned into HTTP answers here, once.

A `ServiceError` says why a request cannot be answered now (not ready, queue full, model unavailable, no
answer in time) and carries its own status code and `Retry-After`; the batcher and the service raise them,
never an HTTP exception. `error_response` renders one in a protocol's shape: `{"detail": ...}` for the native
API (FastAPI's own shape, so 404, 405 and 422 look the same), `{"error": ...}` for the Open Inference Protocol.
The handlers pick the shape by path (`error_key`): everything under /v2 is OIP, so that its clients read every
error there, 404, 405 and 413 included, from `error`; `app.oip.errors.ProtocolError` is rendered the same way.
An image's own failure is not here: it is `app.preprocess.ImageError` / `BadItem`, answered per image.

The bug path is here too: an unexpected exception becomes a logged 500 with JSON; the server lives on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Literal

from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from app.oip.errors import ProtocolError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

ErrorKey = Literal["detail", "error"]
"""The key of the message in an error body: "detail" natively, "error" in Open Inference Protocol v2."""
OIP_PREFIX = "/v2"
"""Where the Open Inference Protocol v2 routes live (`app.routes.oip`)."""


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


def error_response(error: ServiceError | ProtocolError, *, key: ErrorKey = "detail") -> JSONResponse:
    """The HTTP answer for `error` in a protocol's shape: `{key: message}`, its status and headers."""
    return JSONResponse({key: str(error)}, status_code=error.status_code, headers=error.headers)


def error_key(scope: Scope) -> ErrorKey:
    """The error shape of the request's path: "error" under /v2 (Open Inference Protocol), else "detail"."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return "error" if path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/") else "detail"


async def service_error(request: Request, exc: Exception) -> JSONResponse:
    """A `ServiceError` (or an OIP `ProtocolError`) with its status and Retry-After, in the path's shape."""
    assert isinstance(exc, ServiceError | ProtocolError)  # registered for these only
    return error_response(exc, key=error_key(request.scope))


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer for an HTTP error (404, 405, 413, ...), as `{"error": ...}` under /v2."""
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    if error_key(request.scope) == "detail":
        return await http_exception_handler(request, exc)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a bad request: log it with its traceback and tell the client without leaking internals."""
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    key = error_key(request.scope)
    return JSONResponse({key: "internal server error; the server log has the details"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(ProtocolError, service_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
