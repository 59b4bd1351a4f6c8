"""ServingApp answers DirectRoutes without FastAPI's per-request stack, behind the app's own middleware and with
its exception handlers; the routes stay ordinary FastAPI routes (OpenAPI, dispatch under a root path)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.direct_routes import DirectRoute, ServingApp
from app.errors import QueueFull, install_error_handlers


class Stamp:
    """Pure-ASGI middleware that adds a header to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def make_app() -> ServingApp:
    app = ServingApp()
    router = APIRouter(route_class=DirectRoute)

    @router.post("/echo", summary="Echo the body")
    async def echo(request: Request) -> Response:
        body = await request.body()
        if body == b"http":
            raise HTTPException(418, "short and stout")
        if body == b"busy":
            raise QueueFull("the queue is full")
        if body == b"bug":
            raise KeyError("a bug")
        return JSONResponse({"body": body.decode(), "route": request.scope["route"].path})

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    app.add_middleware(Stamp)
    install_error_handlers(app)
    return app


@pytest.fixture
def app() -> ServingApp:
    return make_app()


def client(app: ServingApp, **options: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, **options)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_direct_route_is_answered_without_entering_fastapis_stack(app):
    async with client(app) as http:
        response = await http.post("/echo", content=b"hello")
        assert response.json() == {"body": "hello", "route": "/echo"}
        assert response.headers["x-stamp"] == "1"  # the app's own middleware still runs
        assert app.middleware_stack is None  # FastAPI builds its stack on the first request that needs it
        assert (await http.get("/plain")).json() == {"status": "ok"}
        assert app.middleware_stack is not None


@pytest.mark.parametrize(
    ("body", "status", "detail", "retry_after"),
    [(b"http", 418, "short and stout", None), (b"busy", 503, "the queue is full", "1")],
)
async def test_direct_routes_use_the_apps_exception_handlers(app, body, status, detail, retry_after):
    async with client(app) as http:
        response = await http.post("/echo", content=body)
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert response.headers.get("retry-after") == retry_after
    assert response.headers["x-stamp"] == "1"


async def test_a_bug_in_a_direct_route_is_a_logged_json_500(app, caplog):
    async with client(app) as http:
        response = await http.post("/echo", content=b"bug")
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error; the server log has the details"}
        assert (await http.post("/echo", content=b"again")).status_code == 200
    assert "unhandled KeyError on POST /echo" in caplog.text


async def test_other_methods_and_root_paths_go_through_fastapi(app):
    async with client(app) as http:
        wrong = await http.get("/echo")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    async with client(app, root_path="/api") as http:
        response = await http.post("/api/echo", content=b"mounted")
    assert response.json() == {"body": "mounted", "route": "/echo"}


async def test_direct_routes_are_in_the_openapi_document(app):
    async with client(app) as http:
        spec = (await http.get("/openapi.json")).json()
    assert spec["paths"]["/echo"]["post"]["summary"] == "Echo the body"
