"""The JSON objects of the Open Inference Protocol v2 REST API (kserve/open-inference-protocol,
`specification/protocol/inference_rest.md`), with the examples shown on /docs.

`InferenceRequest` is also what the codec validates an inference request's JSON against (types strict:
a shape of `[1.0, 28]` or a `"28"` is refused, not coerced). Unknown fields are ignored, as the protocol lets
clients add their own.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.schemas import EXAMPLE_BASE64, EXAMPLE_PROBABILITIES

Parameters = dict[str, Any]
"""Key/value parameters of a request, an input or an output (values: string, number or boolean)."""

EXAMPLE_VERSION = "4f5ea322d69b"


class RequestInput(BaseModel):
    """One input tensor: `data` in JSON, or `parameters.binary_data_size` bytes after the JSON (binary extension)."""

    name: StrictStr
    datatype: StrictStr = Field(description="BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64 or BYTES")
    shape: list[Annotated[StrictInt, Field(ge=0)]]
    parameters: Parameters | None = None
    data: list[Any] | None = Field(None, description="the elements, row-major, flat or nested")


class RequestOutput(BaseModel):
    """An output the client wants; `parameters.binary_data: true` asks for it in binary after the JSON."""

    name: StrictStr
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """Body of POST /v2/models/{model}/infer (the JSON part, when binary tensor data follows)."""

    id: StrictStr | None = None
    parameters: Parameters | None = Field(
        None, description='`{"binary_data_output": true}`: every output in binary unless it says otherwise'
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(None, description="all outputs when absent")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": [EXAMPLE_BASE64]}],
                    "outputs": [{"name": "digit"}, {"name": "probabilities"}],
                }
            ]
        }
    )


class ResponseOutput(BaseModel):
    """One output tensor of an answer: `data` in JSON, or `parameters.binary_data_size` bytes after the JSON."""

    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    """Answer of an inference request (the JSON part, when binary tensor data follows)."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_name": "mnist",
                    "model_version": EXAMPLE_VERSION,
                    "id": "42",
                    "outputs": [
                        {"name": "digit", "datatype": "INT64", "shape": [1], "data": [7]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [1, 10], "data": EXAMPLE_PROBABILITIES},
                    ],
                }
            ]
        },
    )


class MetadataTensor(BaseModel):
    """An input or output of the model: its name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    """Answer of GET /v2."""

    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    """Answer of GET /v2/models/{model}[/versions/{version}]."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerLive(BaseModel):
    """Answer of GET /v2/health/live."""

    live: bool


class ServerReady(BaseModel):
    """Answer of GET /v2/health/ready."""

    ready: bool


class ModelReady(BaseModel):
    """Answer of GET /v2/models/{model}[/versions/{version}]/ready."""

    name: str
    ready: bool


class ErrorBody(BaseModel):
    """Every Open Inference Protocol error answer: `error` says what went wrong and what to send instead."""

    error: str
    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "input 'pixels': datatype FP32 is not UINT8"}]})
