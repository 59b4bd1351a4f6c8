"""Cross-origin requests from browsers (CORS), for the web origins named in MNIST_SERVE_CORS_ORIGINS; none by default.

A page served from another origin (a web app at https://app.example.com calling this service at
https://digits.example.com) can only read the answers when the service says, in `Access-Control-*` headers, that
its origin may; a JSON or raw-image POST is first asked about in a preflight `OPTIONS` request. The headers are
Starlette's `CORSMiddleware`'s. With no origins set (the default) requests pass straight through, so same-origin use
(the page at /) and non-browser clients (curl, tritonclient, gRPC) are unchanged and pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

ANY_ORIGIN = "*"
CORS_METHODS = ("GET", "POST")
"""What the API's routes answer; a preflight for any other method is refused."""
CORS_EXPOSED_HEADERS = ("Retry-After",)
"""Response headers a page's script may read besides the always-readable ones: when to retry after a 503."""
CORS_MAX_AGE_S = 600
"""How long a browser may cache a preflight's answer (Chromium caps it at 7,200 s)."""


class CrossOrigin:
    """ASGI middleware: CORS for the origins `origins()` gives per request (empty or None: no CORS, a pass-through).

    Why a callable: the settings are read at start-up, after the middleware stack is built (as `BodySizeLimit`'s cap);
    the Starlette middleware is built once, at the first request that has origins to allow.
    """

    def __init__(self, app: ASGIApp, origins: Callable[[], Sequence[str] | None]) -> None:
        self.app = app
        self.origins = origins
        self._cors: tuple[Sequence[str], CORSMiddleware] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origins = self.origins() if scope["type"] == "http" else None
        if not origins:
            await self.app(scope, receive, send)
            return
        if self._cors is None or self._cors[0] != origins:
            self._cors = (origins, cors_middleware(self.app, origins))
        await self._cors[1](scope, receive, send)


def cors_middleware(app: ASGIApp, origins: Sequence[str]) -> CORSMiddleware:
    """Starlette's CORS middleware around `app` for `origins` (ANY_ORIGIN: every origin). Without credentials: the
    service uses no cookies or HTTP authentication of its own (a gateway in front of it may, and answers CORS there)."""
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=list(CORS_METHODS),
        allow_headers=["*"],  # Content-Type (JSON, raw image bodies) and whatever a client adds, e.g. a tracing id
        expose_headers=list(CORS_EXPOSED_HEADERS),
        max_age=CORS_MAX_AGE_S,
    )


def check_origin(origin: str) -> str:
    """`origin` as a browser sends it in its Origin header (scheme://host[:port]), or ANY_ORIGIN; else ValueError
    saying what is wrong (a browser never sends a path, so an origin with one would never match)."""
    if origin == ANY_ORIGIN:
        return origin
    scheme, separator, rest = origin.partition("://")
    if not separator or scheme not in {"http", "https"} or not rest:
        raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], e.g. https://app.example.com")
    if any(mark in rest for mark in "/?#") or any(character.isspace() for character in rest):
        raise ValueError(f"{origin!r} has more than scheme://host[:port]: browsers send origins without a path")
    return origin
