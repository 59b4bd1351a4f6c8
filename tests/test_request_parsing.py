"""Bad input, form by form: each is a 4xx with a JSON `detail` saying what to send, never a 5xx."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from starlette.requests import ClientDisconnect, Request

from app.config import Settings
from app.main import create_app
from app.request_parsing import decode_base64, looks_like_image, media_type, read_body
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas: a decompression bomb must be refused on the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def client():
    settings = Settings(max_batch_images=3, max_image_pixels=1_000_000)
    async with serve_in_process(create_app(settings, model_factory=lambda _: StubModel())) as http:
        yield http


def assert_json_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail
    for fragment in fragments:
        assert fragment in str(detail)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"", "image/png", 400, "empty body"),
        (b"", None, 400, "empty body"),
        (b"hello, not an image", "text/plain", 415, "text/plain"),
        (b"hello, not an image", None, 415, "not an image"),
        (b"hello, not an image", "image/png", 415, "accepted format"),
        (b"%PDF-1.7 a document", "application/octet-stream", 415, "accepted format"),
        (digit_png()[:100], "image/png", 400, "corrupt or truncated"),
        (png_declaring(50_000, 50_000), "image/png", 413, "pixels"),
        (digit_png(1200), "image/png", 413, "pixels"),  # 1.44 M pixels > MAX_IMAGE_PIXELS here
    ],
)
async def test_bad_raw_bodies(client, body, content_type, status, fragment):
    headers = {"Content-Type": content_type} if content_type else {}
    assert_json_error(await client.post("/predict", content=body, headers=headers), status, fragment)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"", 400, "empty body"),
        (b'{"image": ', 400, "not valid JSON"),
        (b"\xff\xfe not utf-8", 400, "not valid JSON"),
        (b'{"img": "abc"}', 422, "image"),
        (b'{"image": 5}', 422, "image"),
        (b'["abc"]', 422, "JSON object like"),
        (b'{"image": "%%% not base64 %%%"}', 400, "base64"),
        (b'{"image": ""}', 400, "empty"),
        (b'{"image": "aGVsbG8="}', 415, "accepted format"),  # valid base64 of "hello"
    ],
)
async def test_bad_json_bodies(client, body, status, fragment):
    response = await client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert_json_error(response, status, fragment)


async def test_multipart_without_the_file_field(client):
    response = await client.post("/predict", files={"image": ("d.png", digit_png(), "image/png")})
    assert_json_error(response, 422, "'file' is missing", "image")


async def test_multipart_field_that_is_not_a_file(client):
    files = {"note": ("note.txt", b"hi", "text/plain")}  # any file makes httpx send multipart
    assert_json_error(await client.post("/predict", data={"file": "abc"}, files=files), 422, "file upload")


async def test_url_encoded_form_is_unsupported(client):
    assert_json_error(await client.post("/predict", data={"file": "abc"}), 415, "x-www-form-urlencoded")


async def test_multipart_empty_file(client):
    response = await client.post("/predict", files={"file": ("d.png", b"", "image/png")})
    assert_json_error(response, 400, "empty")


async def test_two_files_to_single_predict_points_to_batch(client):
    files = [("file", ("a.png", digit_png(), "image/png")), ("file", ("b.png", digit_png(), "image/png"))]
    assert_json_error(await client.post("/predict", files=files), 413, "/predict/batch")


async def test_malformed_multipart(client):
    response = await client.post(
        "/predict", content=b"--nope\r\ngarbage", headers={"Content-Type": "multipart/form-data"}
    )
    assert_json_error(response, 400, "multipart")


@pytest.mark.parametrize("count", [4, 40])
async def test_too_many_images_in_a_multipart_batch(client, count):
    files = [("files", (f"{i}.png", digit_png(), "image/png")) for i in range(count)]
    assert_json_error(await client.post("/predict/batch", files=files), 413, "MNIST_SERVE_MAX_BATCH_IMAGES")


async def test_too_many_images_in_a_json_batch(client):
    images = [base64.b64encode(digit_png()).decode()] * 4
    response = await client.post("/predict/batch", json={"images": images})
    assert_json_error(response, 413, "4 images", "MNIST_SERVE_MAX_BATCH_IMAGES")


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"json": {"images": []}}, 422, "images"),
        ({"json": {"image": "abc"}}, 422, "images"),
        ({"json": {"images": "abc"}}, 422, "images"),
        ({"files": {"file": ("a.png", digit_png(), "image/png")}}, 422, "'files' is missing"),
        ({"content": digit_png(), "headers": {"Content-Type": "image/png"}}, 415, "multipart"),
    ],
)
async def test_bad_batch_requests(client, kwargs, status, fragment):
    assert_json_error(await client.post("/predict/batch", **kwargs), status, fragment)


def test_sniffing_recognises_image_signatures_only():
    assert looks_like_image(digit_png())
    assert looks_like_image(b"\xff\xd8\xff\xe0 jpeg")
    assert looks_like_image(b"RIFF\0\0\0\0WEBPVP8 ")
    assert not looks_like_image(b"hello")
    assert not looks_like_image(b"")
    assert not looks_like_image(b'{"image": "x"}')


def test_base64_in_every_common_spelling_decodes_to_the_same_bytes():
    data = bytes(range(256)) * 3 + b"\xfb\xff"  # has bytes that differ in the URL-safe alphabet; needs padding
    standard = base64.b64encode(data).decode()
    spellings = [
        standard,
        standard.rstrip("="),
        base64.urlsafe_b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76)),
        f"data:image/png;base64,{standard}",
    ]
    assert all(decode_base64(text) == data for text in spellings)
    assert decode_base64("%%% not base64 %%%").status_code == 400
    assert decode_base64("").status_code == 400


def request_receiving(*messages: dict, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    """A Request whose receive() hands out `messages` in turn."""
    queue = list(messages)

    async def receive() -> dict:
        return queue.pop(0)

    return Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers or []}, receive)


async def test_a_body_in_several_messages_is_read_whole():
    parts = [b"\x89PNG", b"\r\n\x1a\n", b"", b"rest"]
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts[:-1]]
    request = request_receiving(*messages, {"type": "http.request", "body": parts[-1], "more_body": False})
    assert await read_body(request) == b"".join(parts)


async def test_a_client_gone_before_the_body_ends_is_a_disconnect():
    request = request_receiving(
        {"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientDisconnect):
        await read_body(request)


@pytest.mark.parametrize(
    ("headers", "media"),
    [
        ([(b"content-type", b"Image/PNG; charset=binary")], "image/png"),
        ([(b"host", b"x"), (b"content-type", b" application/json ")], "application/json"),
        ([(b"content-type", b"image/jpeg"), (b"content-type", b"image/png")], "image/jpeg"),  # the first, as Starlette
        ([(b"host", b"x")], ""),
    ],
)
async def test_the_media_type_is_read_as_starlette_reads_the_header(headers, media):
    request = request_receiving(headers=headers)
    assert media_type(request) == media
    assert media_type(request) == request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
