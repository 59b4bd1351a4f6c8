"""Fixtures for the page's tests in a real browser: the real app on a loopback port, and headless Chromium.

The app is the one `make serve` runs (the shipped checkpoint): the session's `live_server` (tests/conftest.py).
The browser is Debian's Chromium driven by Playwright (`playwright install` cannot download browsers here);
`.ci/run` installs it with `.ci/browser-setup.sh`. Where no Chromium is found, every test here is skipped, saying
so. What the tests import (window sizes, `Visit`, `MnistDigit`) is in helpers.py.

Every page opened through `open_page` records console errors, uncaught exceptions, failed requests and HTTP
errors; a test fails if any happened that it did not `allow`.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser.helpers import MnistDigit, PredictTraffic, Problems, Visit
from tests.helpers import shared_mnist_raw

CHROMIUM_ENV = "CHROMIUM_PATH"
HERE = Path(__file__).parent
EXPECT_TIMEOUT_MS = 20_000  # a shared 2-core CI machine can be slow; a passing check returns as soon as it holds


def chromium_path() -> str | None:
    """$CHROMIUM_PATH, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    for candidate in (os.environ.get(CHROMIUM_ENV), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/browser as `browser`; skip it, with the reason, where Chromium is missing."""
    missing = chromium_path() is None
    skip = pytest.mark.skip(
        reason=f"no Chromium: run .ci/browser-setup.sh (Debian, as root) or set {CHROMIUM_ENV} to a Chromium binary"
    )
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if missing:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def server_url(live_server: str) -> str:
    """The real app with the shipped model (the session's `uvicorn app.main:app`, see tests/conftest.py)."""
    return live_server


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Debian's; Playwright passes --headless --no-sandbox itself).

    Not per session: while Playwright's sync API is open it holds an event loop in this thread, and the async tests
    that run after this directory's would then fail ("cannot be called from a running event loop").
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path())
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server_url: str) -> Iterator[Callable[..., Visit]]:
    """Open the page in a new browser context (`DESKTOP`, `PHONE` or any context options); checks it stayed clean."""
    contexts, visits = [], []

    from playwright.sync_api import expect  # (wait_for_function would eval strings: the page's CSP forbids that)

    def open_(**options: object) -> Visit:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        visit = Visit(page, Problems(), PredictTraffic())
        visits.append(visit)
        problems, traffic = visit.problems.seen, visit.predict_traffic
        is_predict = re.compile(r"/predict\b").search
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
        page.on("request", lambda r: is_predict(r.url) and traffic.started())
        page.on("requestfinished", lambda r: is_predict(r.url) and traffic.ended())
        page.on("requestfailed", lambda r: is_predict(r.url) and traffic.ended())
        page.goto(server_url + "/")
        expect(page.locator("#model")).to_contain_text("version")  # the page has loaded and asked the server
        return visit

    yield open_
    unexpected = [text for visit in visits for text in visit.problems.unexpected()]
    for context in contexts:
        context.close()
    assert not unexpected, "the page had problems:\n" + "\n".join(unexpected)


@pytest.fixture(scope="session")
def mnist_test_digits() -> list[MnistDigit]:
    """The first ten MNIST test digits, read straight from the canonical .gz files (labels 7 2 1 0 4 1 4 9 5 9)."""
    raw = shared_mnist_raw()
    if raw is None:
        pytest.skip("MNIST .gz files not found (set MNIST_RAW_DIR or put them in ../shared/data/mnist/MNIST/raw)")
    count = 10
    images = np.frombuffer(gzip.open(raw / "t10k-images-idx3-ubyte.gz").read(16 + count * 784)[16:], np.uint8)
    labels = gzip.open(raw / "t10k-labels-idx1-ubyte.gz").read(8 + count)[8:]
    return [MnistDigit(i, labels[i], images[i * 784 : (i + 1) * 784].reshape(28, 28)) for i in range(count)]
