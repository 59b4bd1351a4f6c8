"""Cross-origin requests (MNIST_SERVE_CORS_ORIGINS): none allowed by default; the named origins get the preflight
and the `Access-Control-*` headers on every route, errors included; bad values stop start-up naming the variable.
(A real browser's cross-origin fetch: tests/browser/test_cross_origin_in_chromium.py.)"""

from __future__ import annotations

import base64

import pytest

from app.config import Settings, SettingsError, load_settings
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png

APP_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://elsewhere.example.org"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    """What a browser sends before a JSON POST from another origin."""
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"}


def json_image() -> dict[str, str]:
    return {"image": base64.b64encode(digit_png()).decode()}


@pytest.fixture
async def allowing():
    """A client of an app that allows APP_ORIGIN (and a 10 kB body cap, for the 413 below)."""
    settings = Settings(cors_origins=(APP_ORIGIN,), max_body_bytes=10_000)
    async with serve_in_process(create_app(settings, model_factory=lambda _: StubModel())) as http:
        yield http


async def test_by_default_no_origin_is_allowed():
    async with serve_in_process(create_app(Settings(), model_factory=lambda _: StubModel())) as client:
        answer = await client.post("/predict", json=json_image(), headers={"Origin": APP_ORIGIN})
        asked = await client.options("/predict", headers=preflight(APP_ORIGIN))
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert asked.status_code == 405  # no CORS: OPTIONS is just a method /predict does not answer
    assert "access-control-allow-origin" not in asked.headers


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/v2/models/mnist/infer"])
async def test_a_named_origin_passes_the_preflight_of_each_post_route(allowing, path):
    response = await allowing.options(path, headers=preflight(APP_ORIGIN))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert {"GET", "POST"} <= {method.strip() for method in response.headers["access-control-allow-methods"].split(",")}
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert response.headers["access-control-max-age"] == "600"


async def test_a_named_origin_reads_the_answers_and_retry_after(allowing):
    predicted = await allowing.post("/predict", json=json_image(), headers={"Origin": APP_ORIGIN})
    batch = await allowing.post(
        "/predict/batch", json={"images": [json_image()["image"]]}, headers={"Origin": APP_ORIGIN}
    )
    ready = await allowing.get("/v2/health/ready", headers={"Origin": APP_ORIGIN})
    for response in (predicted, batch, ready):
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "origin" in response.headers["vary"].lower()  # caches keep one answer per origin
    assert predicted.headers["access-control-expose-headers"] == "Retry-After"
    assert predicted.json()["digit"] == batch.json()["predictions"][0]["digit"]


async def test_errors_carry_the_headers_too_so_the_page_can_show_why(allowing):
    refused = await allowing.post("/predict", content=b"not an image", headers={"Origin": APP_ORIGIN})
    too_big = await allowing.post(
        "/predict", content=b"\0" * 20_000, headers={"Origin": APP_ORIGIN, "Content-Type": "image/png"}
    )
    assert (refused.status_code, too_big.status_code) == (415, 413)
    for response in (refused, too_big):
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
        assert response.json()["detail"]


async def test_other_origins_are_refused(allowing):
    asked = await allowing.options("/predict", headers=preflight(OTHER_ORIGIN))
    answer = await allowing.post("/predict", json=json_image(), headers={"Origin": OTHER_ORIGIN})
    assert asked.status_code == 400
    assert "access-control-allow-origin" not in asked.headers
    assert answer.status_code == 200  # the server answers; the browser withholds it from the page without the header
    assert "access-control-allow-origin" not in answer.headers
    put = await allowing.options("/predict", headers=preflight(APP_ORIGIN, method="PUT"))
    assert put.status_code == 400  # a method the API does not have


async def test_any_origin_with_a_star():
    settings = Settings(cors_origins=("*",))
    async with serve_in_process(create_app(settings, model_factory=lambda _: StubModel())) as client:
        answer = await client.post("/predict", json=json_image(), headers={"Origin": OTHER_ORIGIN})
    assert answer.headers["access-control-allow-origin"] == "*"


def test_origins_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_CORS_ORIGINS", f" {APP_ORIGIN}, http://localhost:3000,,{APP_ORIGIN} ")
    assert load_settings().cors_origins == (APP_ORIGIN, "http://localhost:3000")
    monkeypatch.setenv("MNIST_SERVE_CORS_ORIGINS", "")
    assert load_settings().cors_origins == ()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (f"{APP_ORIGIN}/", "without a path"),
        (f"{APP_ORIGIN}/page", "without a path"),
        ("app.example.com", "scheme://host"),
        ("ftp://app.example.com", "scheme://host"),
        ("https://", "scheme://host"),
    ],
)
def test_a_value_that_is_no_origin_stops_start_up_saying_why(monkeypatch, value, says):
    monkeypatch.setenv("MNIST_SERVE_CORS_ORIGINS", value)
    with pytest.raises(SettingsError, match="MNIST_SERVE_CORS_ORIGINS") as error:
        load_settings()
    assert says in str(error.value)
