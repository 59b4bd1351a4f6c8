"""POST /predict and /predict/batch: request body → image bytes → `Service.classify_images` → JSON, in order.

Only HTTP is translated here; the service raises `app.errors.ServiceError`s (503, 504), rendered by `app.errors`.
These are the hot routes: `DirectRoute`s (see `app.direct_routes`), answered without FastAPI's dependency
solving or response validation. The bodies are built as plain dicts in the shape of `app.schemas` (which
documents them, and which the tests validate them against) and encoded with orjson.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.direct_routes import DirectRoute
from app.model_input import png_data_url
from app.preprocess import BadItem
from app.request_parsing import BATCH_FIELD, SINGLE_FIELD, read_flag, read_image, read_images
from app.schemas import BatchImagesJSON, BatchPrediction, ErrorBody, ImageJSON, Prediction, scores
from app.service import Classification, Service, get_service

router = APIRouter(tags=["predict"], route_class=DirectRoute)

INCLUDE_INPUT = "include_input"
# Read by the routes themselves (`read_flag`, as FastAPI reads a `bool` query parameter), documented here.
INCLUDE_INPUT_PARAMETER: dict[str, Any] = {
    "name": INCLUDE_INPUT,
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False, "title": "Include Input"},
    "description": (
        "also answer `input_image`: the 28×28 image the model classified, after preprocessing, as a PNG data "
        "URL (see why an upload was misread; the page at / shows it). Off by default: no PNG is encoded "
        "unless asked for."
    ),
}


def _request_body(json_model: type[ImageJSON | BatchImagesJSON], field: str, many: bool) -> dict[str, Any]:
    """OpenAPI for what the route reads itself: `include_input`, and a body in JSON, multipart or (single only)
    raw image bytes."""
    file_schema = {"type": "string", "format": "binary"}
    multipart = {"type": "array", "items": file_schema} if many else file_schema
    schema = json_model.model_json_schema()
    content: dict[str, Any] = {
        "application/json": {"schema": schema, "example": schema["examples"][0]},
        "multipart/form-data": {
            "schema": {"type": "object", "required": [field], "properties": {field: multipart}},
            "encoding": {field: {"contentType": "image/png, image/jpeg"}},
        },
    }
    if not many:
        for media in ("image/png", "image/jpeg", "application/octet-stream"):
            content[media] = {"schema": file_schema}
    return {"parameters": [INCLUDE_INPUT_PARAMETER], "requestBody": {"required": True, "content": content}}


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "empty body, malformed JSON or base64, undecodable or truncated image",
        413: "body over MNIST_SERVE_MAX_BODY_BYTES, image over MNIST_SERVE_MAX_IMAGE_PIXELS, too many images",
        415: "content type that is neither an image, multipart nor JSON; unsupported image format",
        422: "missing multipart field or JSON key; an `include_input` that is not a boolean",
        503: "queue full (see Retry-After) or model not available",
        504: "no answer from the model within MNIST_SERVE_REQUEST_TIMEOUT_S",
    }.items()
}


@router.post(
    "/predict",
    response_model=Prediction,
    responses=ERRORS,
    openapi_extra=_request_body(ImageJSON, SINGLE_FIELD, many=False),
    summary="Classify one handwritten digit",
    description=(
        "Send one image as the raw body (`curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg'`), as "
        f"multipart field `{SINGLE_FIELD}` (`curl -F {SINGLE_FIELD}=@digit.png`), or as JSON "
        f'`{{"image": "<base64>"}}`. The JSON example holds a real MNIST 7 to try.'
    ),
)
async def predict(request: Request) -> Response:
    """Classify one image; its problems are answered with their own status (400, 413, 415)."""
    include_input = read_flag(request, INCLUDE_INPUT)
    service = await get_service(request)
    result = await service.classify_image(await read_image(request))
    if isinstance(result, BadItem):
        raise HTTPException(result.status_code, result.detail)
    body = scores(result.probabilities, result.is_digit) | {"model": _model_ref(service)}
    if include_input:
        body["input_image"] = png_data_url(result.pixels)
    return _json(body)


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    responses=ERRORS,
    openapi_extra=_request_body(BatchImagesJSON, BATCH_FIELD, many=True),
    summary="Classify several handwritten digits",
    description=(
        f"Send multipart fields `{BATCH_FIELD}` (`curl -F {BATCH_FIELD}=@a.png -F {BATCH_FIELD}=@b.jpg`) "
        'or JSON `{"images": ["<base64>", ...]}`. Answers are in request order. A bad image does not fail '
        "the batch: its entry has `status_code` and `error` instead of a digit; the request is still 200. "
        "Problems of the request as a whole (size, count, JSON syntax, queue full, timeout) fail it with "
        "a 4xx/5xx."
    ),
)
async def predict_batch(request: Request) -> Response:
    """Classify up to MNIST_SERVE_MAX_BATCH_IMAGES images, each answered in its place."""
    include_input = read_flag(request, INCLUDE_INPUT)
    service = await get_service(request)
    blobs = await read_images(request, max_images=service.settings.max_batch_images)
    results = await service.classify_images(blobs)
    items = [
        {"index": index, "status_code": result.status_code, "error": result.detail}
        if isinstance(result, BadItem)
        else _batch_item(result, index, include_input)
        for index, result in enumerate(results)
    ]
    return _json({"predictions": items, "model": _model_ref(service)})


def _batch_item(result: Classification, index: int, include_input: bool) -> dict[str, object]:
    """A `BatchItem`; with the model's input as a PNG data URL only when the client asked for it."""
    item = scores(result.probabilities, result.is_digit) | {"index": index}
    if include_input:
        item["input_image"] = png_data_url(result.pixels)
    return item


def _model_ref(service: Service) -> dict[str, str]:
    """A `ModelRef`: which model answered."""
    return {"name": service.model.name, "version": service.model.version}


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
