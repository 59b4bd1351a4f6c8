"""The page at /, used as a person would in headless Chromium: draw digits, clear, upload MNIST digits and a photo,
drop and paste images, read the answer, the ten probabilities and the 28×28 the model saw, and see API errors.

Runs against the real app and shipped model (see conftest.py). Every test also fails on console errors, uncaught
exceptions and failed requests it did not expect.

The README's screenshot is written by `test_drawing_digits_at_desktop_width` when docs/page.png is missing, or
with UPDATE_SCREENSHOT=1:
    UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/browser -k desktop_width
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.preprocess import to_mnist_pixels
from benchmarks.renders import render
from tests.browser.helpers import DESKTOP, PHONE, MnistDigit, Visit
from tests.helpers import REPO

SCREENSHOT = REPO / "docs/page.png"
SCREENSHOT_VIEW = {"viewport": {"width": 1000, "height": 700}}
Stroke = list[tuple[float, float]]  # points as fractions of the pad's width and height
DIGIT_STROKES: dict[str, list[Stroke]] = {
    "1": [[(0.5, 0.15), (0.5, 0.85)]],
    "7": [[(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]],
    "0": [[(0.5 + 0.22 * math.sin(a * math.pi / 12), 0.5 - 0.33 * math.cos(a * math.pi / 12)) for a in range(25)]],
    "4": [[(0.35, 0.15), (0.28, 0.58), (0.75, 0.58)], [(0.62, 0.2), (0.62, 0.88)]],
}
STEPS = 8  # mouse moves per line segment
THROTTLE_MS = int(re.search(r"THROTTLE_MS = (\d+)", (REPO / "app/static/app.js").read_text()).group(1))


def draw_with_mouse(page: Page, strokes: list[Stroke]) -> int:
    """Draw `strokes` on the page's first canvas, as a person with a mouse would; returns the mouse moves made."""
    box = page.locator("canvas").first.bounding_box()
    moves = 0
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=STEPS)
            moves += STEPS
        page.mouse.up()
    return moves


def draw_with_finger(page: Page, strokes: list[Stroke]) -> None:
    """Draw `strokes` with touch events (Chromium's input pipeline: touch → pointer events, as on a phone)."""
    box = page.locator("canvas").first.bounding_box()
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, x: float, y: float) -> None:
        point = [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [] if kind == "touchEnd" else point})

    for stroke in strokes:
        touch("touchStart", *stroke[0])
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
            for step in range(1, STEPS + 1):
                touch("touchMove", x0 + (x1 - x0) * step / STEPS, y0 + (y1 - y0) * step / STEPS)
        touch("touchEnd", *stroke[-1])


def answer(page: Page) -> str:
    """The digit shown once the page has its answer for the latest input (no request in flight)."""
    expect(page.locator("#result")).to_have_attribute("aria-busy", "false")
    return page.locator("#digit").text_content()


def seen_pixels(page: Page) -> np.ndarray:
    """The 28×28 image the page shows as what the model saw, decoded from its data: URL."""
    seen = page.locator("#seen")
    expect(seen).to_be_visible()
    source = seen.get_attribute("src")
    assert source.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))


def check_seen_is_shown_enlarged(page: Page) -> None:
    box = page.locator("#seen").bounding_box()
    assert box["width"] >= 4 * 28 and box["height"] >= 4 * 28, box
    rendering = page.locator("#seen").evaluate("img => getComputedStyle(img).imageRendering")
    assert rendering == "pixelated"


def pad_is_blank(page: Page) -> bool:
    return page.locator("canvas").first.evaluate(
        "pad => pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data.every(v => v === 255)"
    )


def pad_png(page: Page) -> bytes:
    """The drawing on the pad as the PNG the page sends."""
    url = page.locator("canvas").first.evaluate("pad => pad.toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


# ---------------------------------------------------------------- drawing


def test_drawing_digits_at_desktop_width(open_page) -> None:
    visit: Visit = open_page(**DESKTOP)
    page = visit.page
    moves, drawing_s = 0, 0.0
    for digit, strokes in DIGIT_STROKES.items():
        start = time.perf_counter()
        moves += draw_with_mouse(page, strokes)
        drawing_s += time.perf_counter() - start
        assert answer(page) == digit, f"drew a {digit}"
        assert page.locator("#confidence").text_content().endswith("% sure")
        seen = seen_pixels(page)
        assert np.count_nonzero(seen > 127) >= 10, "the 28×28 the model saw is blank"
        np.testing.assert_array_equal(seen, to_mnist_pixels(pad_png(page)))
        check_seen_is_shown_enlarged(page)
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#digit")).to_have_text("")
        expect(page.locator("#seen")).to_be_hidden()
        assert pad_is_blank(page)
    # Throttled: one request per THROTTLE_MS while drawing, then the final drawing (maybe after the one in flight).
    traffic, most = visit.predict_traffic, drawing_s * 1000 / THROTTLE_MS + 3 * len(DIGIT_STROKES)
    assert len(DIGIT_STROKES) <= traffic.sent <= most, f"{traffic.sent} predictions for {moves} mouse moves"
    assert traffic.most_in_flight == 1, "the page had several predictions in flight at once"
    if not SCREENSHOT.exists() or os.environ.get("UPDATE_SCREENSHOT") == "1":
        take_screenshot(open_page)


def take_screenshot(open_page) -> None:
    """The README's picture: a 7 drawn on the pad and the model's answer (PNG, kept small)."""
    page = open_page(**SCREENSHOT_VIEW).page
    draw_with_mouse(page, DIGIT_STROKES["7"])
    assert answer(page) == "7"
    page.wait_for_timeout(300)  # the bars' transition
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_drawing_with_a_finger_on_a_phone(open_page) -> None:
    page = open_page(**PHONE).page
    draw_with_finger(page, DIGIT_STROKES["7"])
    assert answer(page) == "7"
    assert no_horizontal_scroll(page)
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#digit")).to_have_text("")


def test_the_bars_show_the_probabilities(open_page) -> None:
    page = open_page(**DESKTOP).page
    draw_with_mouse(page, DIGIT_STROKES["7"])
    assert answer(page) == "7"
    titles = page.locator("#bars li").evaluate_all("items => items.map(item => item.title)")
    assert [title.split(":")[0] for title in titles] == [str(d) for d in range(10)]
    heights = page.locator("#bars .bar").evaluate_all("bars => bars.map(b => b.getBoundingClientRect().height)")
    assert heights.index(max(heights)) == 7
    assert page.locator("#bars li.top").count() == 1


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize("view", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_uploading_mnist_test_digits(open_page, mnist_test_digits: list[MnistDigit], view) -> None:
    page = open_page(**view).page
    upload = page.locator("input[type=file]").first
    assert "image/" in upload.get_attribute("accept")
    for digit in mnist_test_digits:
        upload.set_input_files(files=[{"name": "digit.png", "mimeType": "image/png", "buffer": png(digit.pixels)}])
        assert answer(page) == str(digit.label), f"MNIST test image {digit.index}"
        np.testing.assert_array_equal(seen_pixels(page), to_mnist_pixels(png(digit.pixels)))
        expect(page.locator("#upload")).to_be_visible()
        expect(page.locator("canvas").first).to_be_hidden()
    assert no_horizontal_scroll(page)
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("canvas").first).to_be_visible()
    expect(page.locator("#upload")).to_be_hidden()


@pytest.mark.parametrize("view", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_uploading_a_photo_of_a_digit(open_page, view) -> None:
    photo = (REPO / "examples/photo.jpg").read_bytes()  # a 1024×768 JPEG of a 2 on unevenly lit paper
    page = open_page(**view).page
    page.locator("input[type=file]").first.set_input_files(str(REPO / "examples/photo.jpg"))
    assert answer(page) == "2"
    np.testing.assert_array_equal(seen_pixels(page), to_mnist_pixels(photo))
    check_seen_is_shown_enlarged(page)
    preview = page.locator("#upload")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 1024, "the preview did not load"
    assert no_horizontal_scroll(page)


def test_uploading_photo_renders_of_mnist_digits(open_page, mnist_test_digits: list[MnistDigit]) -> None:
    page = open_page(**DESKTOP).page
    upload = page.locator("input[type=file]").first
    for digit in mnist_test_digits[:3]:
        photo = render("photo", digit.pixels, seed=digit.index)
        upload.set_input_files(files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        assert answer(page) == str(digit.label), f"photo render of MNIST test image {digit.index}"
        np.testing.assert_array_equal(seen_pixels(page), to_mnist_pixels(photo))


def js_file(page: Page, data: bytes, name: str, mime: str):
    """A File in the page holding `data`, inside a DataTransfer (what drop and paste events carry)."""
    return page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )


def test_dropping_an_image_on_the_page(open_page, mnist_test_digits: list[MnistDigit]) -> None:
    page = open_page(**DESKTOP).page
    digit = mnist_test_digits[1]
    transfer = js_file(page, png(digit.pixels), "dropped.png", "image/png")
    page.dispatch_event("main", "dragover", {"dataTransfer": transfer})
    expect(page.locator("body")).to_have_class("dragging")
    page.dispatch_event("main", "drop", {"dataTransfer": transfer})
    assert answer(page) == str(digit.label)
    expect(page.locator("body")).not_to_have_class("dragging")
    expect(page.locator("#upload")).to_be_visible()


def test_pasting_an_image(open_page, mnist_test_digits: list[MnistDigit]) -> None:
    page = open_page(**DESKTOP).page
    digit = mnist_test_digits[2]
    transfer = js_file(page, png(digit.pixels), "pasted.png", "image/png")
    page.evaluate("t => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: t}))", transfer)
    assert answer(page) == str(digit.label)
    np.testing.assert_array_equal(seen_pixels(page), digit.pixels)


# ---------------------------------------------------------------- errors, controls, looks


@pytest.mark.parametrize("view", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_text_file_shows_the_apis_error_in_words(open_page, server_url: str, view) -> None:
    text = b"these are not the digits you are looking for\n"
    expected = httpx.post(f"{server_url}/predict", files={"file": ("notes.txt", text, "text/plain")})
    assert expected.status_code == 415
    visit: Visit = open_page(**view)
    visit.problems.allow(r"status of 415|HTTP 415: .*/predict")  # Chromium logs every 4xx as a console error
    page = visit.page
    page.locator("input[type=file]").first.set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": text}]
    )
    assert answer(page) == ""
    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text(expected.json()["detail"])
    expect(page.locator("#seen")).to_be_hidden()
    assert no_horizontal_scroll(page)
    page.get_by_role("button", name="Clear").click()  # back to the pad, and the error goes
    expect(error).to_be_hidden()
    draw_with_mouse(page, DIGIT_STROKES["1"])
    assert answer(page) == "1"


def test_controls_are_labelled_and_reachable_by_keyboard(open_page) -> None:
    page = open_page(**DESKTOP).page
    page.locator("input[type=file]").first.set_input_files(str(REPO / "examples/photo.jpg"))
    assert answer(page) == "2"
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
    assert {"clear", "file", "API docs"} <= set(reached), reached
    assert page.get_by_label("Upload an image").get_attribute("type") == "file"
    assert page.get_by_role("img", name="Drawing pad").count() == 0  # a canvas is no image: it has its own label
    assert page.locator("canvas").first.get_attribute("aria-label").startswith("Drawing pad")
    page.get_by_role("button", name="Clear").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#digit")).to_have_text("")
    expect(page.locator("canvas").first).to_be_visible()


def test_the_page_names_the_model_and_links_the_api_docs(open_page, server_url: str) -> None:
    model = httpx.get(f"{server_url}/model").json()
    page = open_page(**DESKTOP).page
    expect(page.locator("#model")).to_contain_text(model["name"])
    expect(page.locator("#model")).to_contain_text(model["version"])
    link = page.get_by_role("link", name="API docs")
    assert httpx.get(f"{server_url}/{link.get_attribute('href')}").status_code == 200


def test_dark_colour_scheme_changes_the_background(open_page) -> None:
    def background(scheme: str) -> list[int]:
        page = open_page(**DESKTOP, color_scheme=scheme).page
        colour = page.evaluate("getComputedStyle(document.body).backgroundColor")  # "rgb(r, g, b)"
        return [int(v) for v in colour[colour.index("(") + 1 : -1].split(",")]

    light, dark = background("light"), background("dark")
    assert sum(light) > 3 * 200, light
    assert sum(dark) < 3 * 60, dark
