"""Error answers: every error is JSON with a `detail`, including those FastAPI and Starlette raise themselves.

FastAPI already renders `HTTPException` (404, 405, ours) and validation errors (422) as `{"detail": ...}`;
added here is the bug path: an unexpected exception becomes a logged 500 with JSON; the server lives on.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a bad request: log it with its traceback and tell the client without leaking internals."""
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error; the server log has the details"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(Exception, unexpected_error)
