"""Every error answer is JSON with a `detail`: 404, 405, FastAPI's 422, a logged 500 for bugs, and the service's
typed errors with their own status and Retry-After (also in the OIP v2 `error` shape)."""

from __future__ import annotations

import json

import pytest

from app.config import Settings
from app.errors import ModelTimeout, ModelUnavailable, NotReady, QueueFull, ServiceError, error_response
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.preprocess.images import IPHONE_HEIC


@pytest.fixture
async def client():
    app = create_app(Settings(), model_factory=lambda _: StubModel())

    @app.get("/test/typed")
    async def typed(count: int) -> dict[str, int]:
        return {"count": count}

    @app.get("/test/typed-error")
    async def typed_error() -> None:
        raise QueueFull("the queue is full (2 images); retry shortly")

    @app.get("/test/bug")
    async def bug() -> None:
        raise KeyError("a bug")

    async with serve_in_process(app, raise_app_exceptions=False) as http:
        yield http


async def test_unknown_path_is_a_json_404(client):
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_wrong_method_is_a_json_405_with_allow(client):
    response = await client.get("/predict")
    assert response.status_code == 405
    assert response.json()["detail"] == "Method Not Allowed"
    assert response.headers["allow"] == "POST"


async def test_fastapi_validation_errors_are_json_422(client):
    response = await client.get("/test/typed", params={"count": "many"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "count"]


async def test_an_unexpected_exception_is_a_logged_json_500_and_the_app_lives_on(client, caplog):
    response = await client.get("/test/bug")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error; the server log has the details"}
    assert "unhandled KeyError on GET /test/bug" in caplog.text
    assert "a bug" not in response.text  # internals stay in the log
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (NotReady("x"), 503, "1"),
        (QueueFull("x"), 503, "1"),
        (ModelUnavailable("x"), 503, "5"),
        (ModelTimeout("x"), 504, None),
    ],
    ids=["not ready", "queue full", "model unavailable", "timeout"],
)
@pytest.mark.parametrize("key", ["detail", "error"])
def test_service_errors_carry_their_status_and_retry_after_in_either_shape(
    error: ServiceError, status: int, retry_after: str | None, key: str
) -> None:
    response = error_response(error, key=key)
    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after
    assert json.loads(response.body) == {key: "x"}


async def test_a_service_error_raised_in_a_route_is_answered_natively(client):
    response = await client.get("/test/typed-error")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json() == {"detail": "the queue is full (2 images); retry shortly"}


async def test_an_iphone_photo_as_heic_is_a_415_that_says_how_to_send_it(client):
    response = await client.post("/predict", content=IPHONE_HEIC, headers={"Content-Type": "image/heic"})
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert detail.startswith("HEIC images are not accepted") and "convert it to JPEG" in detail
