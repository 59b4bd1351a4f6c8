"""A web app on another origin calling the API from Chromium: it reads the answers only where the service names its
origin in MNIST_SERVE_CORS_ORIGINS (the browser, not the test, enforces CORS here: preflight included, since a JSON
POST is not a "simple" request)."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from app.testing import running_server
from tests.browser.helpers import DESKTOP, MnistDigit
from tests.helpers import REPO

FETCH_PREDICT = """async ([server, image]) => {
  try {
    const response = await fetch(server + "/predict", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({image}),
    });
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""
"""What a web app's script does: POST a digit as JSON and read the answer (or the error the browser raises)."""


class BlankPage(BaseHTTPRequestHandler):
    """Answers every GET with an empty HTML page: the other web app, whose origin is this server's."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>another web app</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def app_origin() -> Iterator[str]:
    """The other web app's origin: a loopback server of its own (another port is another origin)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def allowing_server(app_origin: str) -> Iterator[str]:
    """The real service (shipped model) with the web app's origin in MNIST_SERVE_CORS_ORIGINS."""
    with running_server(settings={"cors_origins": app_origin, "device": "cpu"}, cwd=REPO) as server:
        yield server.url


def png_base64(digit: MnistDigit) -> str:
    buffer = io.BytesIO()
    Image.fromarray(digit.pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def fetch_from_the_app(browser, app_origin: str, server: str, digit: MnistDigit) -> dict:
    context = browser.new_context(**DESKTOP)
    try:
        page = context.new_page()
        page.goto(app_origin)
        return page.evaluate(FETCH_PREDICT, [server, png_base64(digit)])
    finally:
        context.close()


def test_a_named_origin_reads_the_answers(browser, app_origin, allowing_server, mnist_test_digits):
    for digit in mnist_test_digits[:3]:
        result = fetch_from_the_app(browser, app_origin, allowing_server, digit)
        assert result.get("status") == 200, result
        assert result["body"]["digit"] == digit.label


def test_without_the_setting_the_browser_withholds_the_answer(browser, app_origin, live_server, mnist_test_digits):
    result = fetch_from_the_app(browser, app_origin, live_server, mnist_test_digits[0])  # default settings: no CORS
    assert "error" in result, result
    assert "Failed to fetch" in result["error"]
