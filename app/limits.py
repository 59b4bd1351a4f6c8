"""Request body size cap, enforced before the body is read into memory.

A declared Content-Length over the cap is answered 413 at once, without reading the body, in the error shape of
the path's protocol (one within the cap is all the server passes on). A chunked body (no Content-Length) is counted
as it streams in, and the read fails with 413 as soon as the count passes the cap.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_key


class BodyTooLarge(HTTPException):
    """The request body passed MNIST_SERVE_MAX_BODY_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body exceeds {limit} bytes (MNIST_SERVE_MAX_BODY_BYTES): send a smaller image"
        )


class BodySizeLimit:
    """ASGI middleware; `limit()` gives the cap in bytes per request (None: no settings yet, no cap)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int | None]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit() if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None:
            if declared > limit:
                await _reject(BodyTooLarge(limit), scope, send)
            else:  # the HTTP server never passes on more than the declared length: nothing to count
                await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # raised where no exception handler caught it (e.g. outside a route)
            if started:
                raise
            await _reject(exc, scope, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server itself rejects a malformed length
    return None


async def _reject(exc: HTTPException, scope: Scope, send: Send) -> None:
    body = {error_key(scope): exc.detail}  # {"error": ...} for Open Inference Protocol paths
    await JSONResponse(body, status_code=exc.status_code)(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
