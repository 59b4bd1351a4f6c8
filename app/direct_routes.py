"""Hot routes answered without FastAPI's per-request machinery, yet documented in its OpenAPI like any other.

Per request, FastAPI's own path (telemetry check, seven middleware layers, route matching, dependency solving,
response validation and encoding) cost ~0.1 ms of CPU here: more than decoding a 28×28 PNG, and on one core more
than the model's share of an image. A `DirectRoute` is an ordinary FastAPI route (so OpenAPI, /docs and the
normal dispatch all still work) whose endpoint takes a `Request` and returns a finished `Response`. `ServingApp`
answers an exact method and path of such a route by calling the endpoint straight behind the app's own pure-ASGI
middleware (metrics, body-size cap), with the app's exception handlers; everything else goes through FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

# FastAPI ≥ 0.16x keeps included routers as such in app.routes and resolves their routes lazily (None: an older
# FastAPI, which copies included routes into app.routes).
_iter_route_contexts: Callable[[list[BaseRoute]], Iterable[Any]] | None = getattr(
    fastapi.routing, "iter_route_contexts", None
)


def _routes(routes: list[BaseRoute]) -> list[tuple[BaseRoute, str | None, set[str] | None]]:
    """(route, full path, methods) of every route, those of included routers too."""
    if _iter_route_contexts is None:
        return [(route, getattr(route, "path", None), getattr(route, "methods", None)) for route in routes]
    return [(context.original_route, context.path, context.methods) for context in _iter_route_contexts(routes)]


class DirectRoute(APIRoute):
    """A route whose endpoint is `async def endpoint(request: Request) -> Response`, called directly by
    `ServingApp` (FastAPI's dispatch reaches the same endpoint, e.g. under a root path)."""


class ServingApp(FastAPI):
    """FastAPI, with `DirectRoute`s answered before FastAPI's own per-request stack."""

    _direct: dict[tuple[str, str], tuple[DirectRoute, ASGIApp]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            if self._direct is None:  # built at the first request, when routes and middleware are final
                self._direct = self._build_direct()
            found = self._direct.get((scope["method"], scope["path"]))
            if found is not None:
                scope["app"] = self
                scope["route"] = found[0]  # as Starlette's router does: the metrics label requests by it
                await found[1](scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _build_direct(self) -> dict[tuple[str, str], tuple[DirectRoute, ASGIApp]]:
        """(method, path) → the route and its endpoint wrapped in the app's own middleware, outermost first."""
        table: dict[tuple[str, str], tuple[DirectRoute, ASGIApp] | None] = {}
        for route, path, methods in _routes(self.routes):
            if not path:  # not an HTTP route a request path could name
                continue
            keys = [(method, path) for method in methods or ()]
            if not isinstance(route, DirectRoute):
                table.update((key, table.get(key)) for key in keys)  # an earlier route of the same path wins
                continue
            handler: ASGIApp = self._endpoint_app(route)
            for middleware, args, kwargs in reversed(self.user_middleware):
                handler = middleware(handler, *args, **kwargs)
            table.update((key, table.get(key, (route, handler))) for key in keys)
        return {key: found for key, found in table.items() if found is not None}

    def _endpoint_app(self, route: DirectRoute) -> ASGIApp:
        endpoint: Endpoint = route.endpoint

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = self._exception_handler(exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
            await response(scope, receive, send)

        return app

    def _exception_handler(self, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
        """The app's handler for `exc`, by class as Starlette looks it up (most specific first)."""
        for cls in type(exc).__mro__:
            if cls in self.exception_handlers:
                return self.exception_handlers[cls]  # type: ignore[return-value]
        return None
