"""The first step of a request: its body → image bytes, whatever form the client chose.

Accepted forms: a raw body (an image content type; a mislabelled or missing type is sniffed), multipart form
data (field `file` for /predict, repeated `files` for /predict/batch) and JSON (`{"image": b64}` for /predict,
`{"images": [b64, …]}` for /predict/batch). Problems with the request as a whole raise `HTTPException` with a
`detail` saying what to send instead: 400 malformed (empty body, bad JSON), 413 too many images, 415
unsupported content type, 422 missing field or wrong JSON shape.
In a batch, an item that is not even base64 becomes a `BadItem` in its place, so that it fails alone.
`read_flag` reads a boolean query parameter for the routes that solve no FastAPI dependencies.
The body's size is capped before this step by `app.limits.BodySizeLimit`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from app.preprocess import BadItem, looks_like_image
from app.schemas import BatchImagesJSON, ImageJSON

SINGLE_FIELD = "file"
BATCH_FIELD = "files"
HOW_TO_SEND = (
    "send the image as the raw body (Content-Type: image/png or image/jpeg), as multipart field '{field}', "
    'or as JSON {{"{key}": {value}}}'
)
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
M = TypeVar("M", bound=BaseModel)
_BOOLEAN = TypeAdapter(bool)


async def read_image(request: Request) -> bytes:
    """The one image of a /predict request."""
    media = media_type(request)
    if media == "multipart/form-data":
        [item] = await _read_multipart(request, SINGLE_FIELD, max_files=1)
    elif _is_json(media):
        payload = _validate(ImageJSON, await _read_json(request))
        item = decode_base64(payload.image)
    else:
        item = await _read_raw(request, media)
    if isinstance(item, BadItem):
        raise HTTPException(item.status_code, item.detail)
    return item


async def read_images(request: Request, *, max_images: int) -> list[bytes | BadItem]:
    """The images of a /predict/batch request, in request order; at most `max_images` (413 beyond)."""
    media = media_type(request)
    if media == "multipart/form-data":
        return await _read_multipart(request, BATCH_FIELD, max_files=max_images)
    if _is_json(media):
        payload = _validate(BatchImagesJSON, await _read_json(request))
        if len(payload.images) > max_images:
            raise _too_many(BATCH_FIELD, max_images, len(payload.images))
        return [decode_base64(text) for text in payload.images]
    raise HTTPException(
        415,
        f"unsupported content type {media or '(none)'!r} for a batch: send multipart/form-data with one "
        f'\'{BATCH_FIELD}\' field per image, or JSON {{"images": ["<base64>", ...]}}',
    )


def read_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (absent: False), read as FastAPI reads a `bool` one (true/false, 1/0, yes/no,
    on/off, any case); another value is FastAPI's own 422 naming it. For routes that solve no dependencies."""
    if not request.scope["query_string"]:  # the common case: no query string, nothing to parse
        return False
    value = request.query_params.get(name)
    if value is None:
        return False
    try:
        return _BOOLEAN.validate_python(value)
    except ValidationError as exc:
        errors = [
            {"type": error["type"], "loc": ["query", name], "msg": error["msg"], "input": value}
            for error in exc.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(errors) from None


def media_type(request: Request) -> str:
    """The Content-Type's media type, lower case ("" when absent), read off the raw header list: Starlette's
    `request.headers` builds a `Headers` object per request for this one lookup."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":  # ASGI servers lower-case header names
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


async def read_body(request: Request) -> bytes:
    """The whole request body, as `request.body()` reads it (raising `ClientDisconnect` if the client goes), by
    plain `receive` calls: Starlette's `body()` runs an async generator under `aclosing` for every request, which
    on a busy server, its code out of the caches between requests, cost more than the rest of reading a small
    upload (measured with `benchmarks/app_overhead.py`)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


async def _read_raw(request: Request, media: str) -> bytes:
    body = await read_body(request)
    if not body:
        raise HTTPException(
            400, "empty body: " + HOW_TO_SEND.format(field=SINGLE_FIELD, key="image", value='"<base64>"')
        )
    declared_image = media.startswith("image/") or media == "application/octet-stream"
    if not declared_image and not looks_like_image(body):
        raise HTTPException(
            415,
            f"unsupported content type {media or '(none)'!r} and the body is not an image: "
            + HOW_TO_SEND.format(field=SINGLE_FIELD, key="image", value='"<base64>"'),
        )
    return body


async def _read_multipart(request: Request, field: str, *, max_files: int) -> list[bytes | BadItem]:
    # One file more than allowed lets us tell "too many" (413) from the parser's own limit message.
    try:
        form = await request.form(max_files=max_files + 1, max_fields=max_files + 16)
    except HTTPException as exc:
        if exc.status_code != 400:  # e.g. 413 from the body-size cap
            raise
        if "Too many files" in str(exc.detail):
            raise _too_many(field, max_files) from None
        raise HTTPException(400, f"malformed multipart body: {exc.detail}") from None
    try:
        values = form.getlist(field)
        if not values:
            seen = sorted(set(form.keys()))
            raise HTTPException(
                422,
                f"multipart field '{field}' is missing (got {seen or 'no fields'}); send it as -F {field}=@digit.png",
            )
        if len(values) > max_files:
            raise _too_many(field, max_files, len(values))
        items: list[bytes | BadItem] = []
        for value in values:
            if not isinstance(value, UploadFile):
                items.append(BadItem(422, f"multipart field '{field}' must be a file upload (-F {field}=@digit.png)"))
                continue
            data = await value.read()
            items.append(data if data else BadItem(400, f"the uploaded file {value.filename!r} is empty"))
        return items
    finally:
        await form.close()


async def _read_json(request: Request) -> object:
    body = await read_body(request)
    if not body:
        raise HTTPException(400, "empty body: expected a JSON object")
    try:
        return orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # orjson's JSONDecodeError is a ValueError
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None


def _validate(model: type[M], payload: object) -> M:
    """FastAPI-shaped 422 errors (loc starts with "body"), without echoing the input (it may be megabytes)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        example = json.dumps(model.model_json_schema()["examples"][0])[:60] + "…"
        shape = f"expected a JSON object like {example}"
        errors = [
            {
                "loc": ["body", *error["loc"]],
                "msg": shape if error["type"] == "model_type" else error["msg"],
                "type": error["type"],
            }
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None  # FastAPI's own 422 shape: {"detail": [errors]}


def decode_base64(text: str) -> bytes | BadItem:
    """Standard or URL-safe base64, with or without padding, line breaks or a `data:` URL prefix."""
    try:  # the common case, plain padded standard base64, in one C call (a batch has up to 64 of them)
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        data = b""
    if data:
        return data
    text = _WHITESPACE.sub("", _DATA_URL.sub("", text, count=1))
    if not text:
        return BadItem(400, "the image is an empty string: expected base64-encoded image bytes")
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return BadItem(400, "the image is not valid base64: encode the file's bytes, e.g. `base64 -w0 digit.png`")
    return data if data else BadItem(400, "the image decodes to zero bytes")


def _too_many(field: str, max_images: int, count: int | None = None) -> HTTPException:
    if field == SINGLE_FIELD:
        return HTTPException(413, f"/predict takes one image; send several to /predict/batch as '{BATCH_FIELD}' fields")
    got = f"{count} images exceed" if count is not None else "the request exceeds"
    return HTTPException(
        413,
        f"{got} the limit of {max_images} images per request (MNIST_SERVE_MAX_BATCH_IMAGES): split the batch",
    )
