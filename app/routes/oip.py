"""Open Inference Protocol v2 REST (KServe v2 / Triton HTTP) under /v2: health, metadata and inference.

Only HTTP is translated here: the body and the `Inference-Header-Content-Length` header go to `app.oip.codec`,
the decoded request to `app.oip.mnist.infer` (the same `Service`, batcher, limits and metrics as /predict), and
the output tensors back through the codec. Errors are `{"error": "..."}` with their status (`app.errors` picks
that shape for every path under /v2): 400 malformed, 404 unknown model or version, 413 over a limit, 503 with
Retry-After (not ready, queue full), 504 no answer in time.
"""

from __future__ import annotations

import base64
import io
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app import __version__
from app.errors import OIP_PREFIX
from app.oip import mnist
from app.oip.classification import CLASSIFICATION_EXTENSION
from app.oip.codec import EXTENSION, HEADER_LENGTH, decode_request, encode_response
from app.oip.model_config import CONFIG_EXTENSION, ModelConfig, model_config
from app.oip.schemas import (
    ErrorBody,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from app.schemas import EXAMPLE_BASE64
from app.service import Service, ServiceDep

router = APIRouter(prefix=OIP_PREFIX, tags=["oip"])

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "loading, warming up, warm-up failed or shutting down"}
}
UNKNOWN_MODEL: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "unknown model or version"}}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "malformed body; wrong input name, datatype or shape; data size not matching the shape; an "
        "undecodable image (its index is named); unknown output",
        404: "unknown model or version",
        413: "body over MNIST_SERVE_MAX_BODY_BYTES, more images than MNIST_SERVE_MAX_BATCH_IMAGES, an image over "
        "MNIST_SERVE_MAX_IMAGE_PIXELS",
        415: "a compressed body (Content-Encoding): send it uncompressed",
        503: "queue full or model not available (see Retry-After)",
        504: "no answer from the model within MNIST_SERVE_REQUEST_TIMEOUT_S",
    }.items()
}
HeaderLength = Annotated[
    str | None,
    Header(
        alias=HEADER_LENGTH,
        description="length of the JSON part when binary tensor data follows it (binary tensor data extension)",
    ),
]


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its nested models written in place: a `$ref` to `#/$defs/...` would be read
    against the OpenAPI document's root, where those definitions are not."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    return resolve(schema)


def _example_pixels() -> list[int]:
    """The /docs example digit (a 7) as the 784 values of a `pixels` tensor."""
    image = Image.open(io.BytesIO(base64.b64decode(EXAMPLE_BASE64)))
    return np.asarray(image.convert("L")).reshape(-1).tolist()


INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _inline_schema(InferenceRequest),
                "examples": {
                    "images": {
                        "summary": "an encoded image file (PNG, base64 in JSON)",
                        "value": InferenceRequest.model_json_schema()["examples"][0],
                    },
                    "pixels": {
                        "summary": "an MNIST-format digit, 28×28 uint8, white on black",
                        "value": {
                            "inputs": [
                                {"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": _example_pixels()}
                            ]
                        },
                    },
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": f"binary tensor data extension: the JSON request ({HEADER_LENGTH} bytes), then "
                "each input's `binary_data_size` bytes in input order (BYTES elements: 4-byte little-endian "
                "length, then the bytes)",
            },
        },
    }
}
INFER_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InferenceResponse,
        "description": f"JSON; or, when an output was asked for in binary, the JSON ({HEADER_LENGTH} bytes in the "
        "header of the same name) followed by the binary outputs",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **INFER_ERRORS,
}
INFER_DESCRIPTION = (
    "Send exactly one input: `pixels` (UINT8 [-1, 28, 28], MNIST-format digits: white ink on black, only "
    "normalised) or `images` (BYTES [-1, 1] or [-1], encoded image files preprocessed like /predict; base64 "
    "strings in JSON, raw bytes in binary). Outputs: `probabilities` (FP32 [-1, 10]), `digit` (INT64 [-1]) and, "
    "with a digit gate, `is_digit` (BOOL [-1]); all unless `outputs` names some; each in binary when its "
    "`binary_data` parameter (or the request's `binary_data_output`) is true. `probabilities` with the parameter "
    "`classification: K` comes back as its K highest classes instead, BYTES [-1, K] of `value:digit` (Triton's "
    "classification extension). `tritonclient.http` speaks this unchanged."
)


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> ServerMetadata:
    """The server's name and version, and the protocol extensions it speaks."""
    return ServerMetadata(
        name=request.app.title, version=__version__, extensions=[EXTENSION, CLASSIFICATION_EXTENSION, CONFIG_EXTENSION]
    )


@router.get("/health/live", response_model=ServerLive, summary="Server live")
async def server_live() -> ServerLive:
    """200 whenever the event loop answers (liveness)."""
    return ServerLive(live=True)


@router.get("/health/ready", response_model=ServerReady, responses=NOT_READY, summary="Server ready")
async def server_ready(service: ServiceDep) -> ServerReady:
    """200 once the model is loaded and warmed up; 503 with Retry-After before, on failure or shutting down."""
    service.check_ready()
    return ServerReady(ready=True)


@router.get("/models/{model_name}", response_model=ModelMetadata, responses=UNKNOWN_MODEL, summary="Model metadata")
async def model_metadata(model_name: str, service: ServiceDep) -> ModelMetadata:
    """The model's version (the checkpoint's), platform, inputs and outputs with datatypes and shapes."""
    mnist.check_model(model_name, None, service.model.version)
    return mnist.metadata(service)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    response_model=ModelMetadata,
    responses=UNKNOWN_MODEL,
    summary="Model metadata (one version)",
)
async def model_version_metadata(model_name: str, model_version: str, service: ServiceDep) -> ModelMetadata:
    """As `GET /v2/models/{model_name}`; 404 unless `model_version` is the served checkpoint's."""
    mnist.check_model(model_name, model_version, service.model.version)
    return mnist.metadata(service)


@router.get(
    "/models/{model_name}/config", response_model=ModelConfig, responses=UNKNOWN_MODEL, summary="Model configuration"
)
async def model_configuration(model_name: str, service: ServiceDep) -> ModelConfig:
    """Triton's model configuration extension: batch limit, inputs and outputs without the batch dimension,
    dynamic batching, device; what `perf_analyzer` and `tritonclient`'s `get_model_config` read."""
    mnist.check_model(model_name, None, service.model.version)
    return model_config(service)


@router.get(
    "/models/{model_name}/versions/{model_version}/config",
    response_model=ModelConfig,
    responses=UNKNOWN_MODEL,
    summary="Model configuration (one version)",
)
async def model_version_configuration(model_name: str, model_version: str, service: ServiceDep) -> ModelConfig:
    """As `GET /v2/models/{model_name}/config`; 404 unless `model_version` is the served checkpoint's."""
    mnist.check_model(model_name, model_version, service.model.version)
    return model_config(service)


@router.get(
    "/models/{model_name}/ready",
    response_model=ModelReady,
    responses={**UNKNOWN_MODEL, **NOT_READY},
    summary="Model ready",
)
async def model_ready(model_name: str, service: ServiceDep) -> ModelReady:
    """200 once the model is warmed up; 503 with Retry-After before."""
    mnist.check_model(model_name, None, service.model.version)
    service.check_ready()
    return ModelReady(name=mnist.MODEL_NAME, ready=True)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    response_model=ModelReady,
    responses={**UNKNOWN_MODEL, **NOT_READY},
    summary="Model ready (one version)",
)
async def model_version_ready(model_name: str, model_version: str, service: ServiceDep) -> ModelReady:
    """As `GET /v2/models/{model_name}/ready`, for the served version only."""
    mnist.check_model(model_name, model_version, service.model.version)
    service.check_ready()
    return ModelReady(name=mnist.MODEL_NAME, ready=True)


@router.post(
    "/models/{model_name}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSE,
    openapi_extra=INFER_BODY,
    summary="Inference",
    description=INFER_DESCRIPTION,
)
async def infer(model_name: str, request: Request, service: ServiceDep, header_length: HeaderLength = None) -> Response:
    """Classify the images of one inference request."""
    return await _infer(request, service, model_name, None, header_length)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSE,
    openapi_extra=INFER_BODY,
    summary="Inference (one version)",
    description=INFER_DESCRIPTION,
)
async def infer_version(
    model_name: str, model_version: str, request: Request, service: ServiceDep, header_length: HeaderLength = None
) -> Response:
    """As `POST /v2/models/{model_name}/infer`; 404 unless `model_version` is the served checkpoint's."""
    return await _infer(request, service, model_name, model_version, header_length)


async def _infer(
    request: Request, service: Service, model_name: str, model_version: str | None, header_length: str | None
) -> Response:
    mnist.check_model(model_name, model_version, service.model.version)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise HTTPException(415, f"Content-Encoding {encoding!r} is not supported: send the body uncompressed")
    decoded = decode_request(await request.body(), header_length)
    outputs = await mnist.infer(service, decoded)
    encoded = encode_response(
        model_name=mnist.MODEL_NAME, model_version=service.model.version, request_id=decoded.id, outputs=outputs
    )
    headers = {} if encoded.header_length is None else {HEADER_LENGTH: str(encoded.header_length)}
    return Response(encoded.body, media_type=encoded.media_type, headers=headers)
