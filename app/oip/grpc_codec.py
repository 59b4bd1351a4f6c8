"""Open Inference Protocol v2 messages over gRPC (`grpc_predict_v2.proto`) ↔ the protocol's plain objects.

A `ModelInferRequest` becomes the same `DecodedRequest` a REST body does, through the same checks
(`codec.decode_parsed`): each input's data is either one entry of `raw_input_contents` (little-endian, row-major;
a BYTES element is a 4-byte length, then its bytes: the binary tensor extension's layout, so those entries are
handed on as that binary data) or its typed `contents` (numbers as JSON data would be; `bytes_contents` as raw
files, not base64 as in JSON). Outputs always go back as `raw_output_contents`, which is what Triton sends and
what `tritonclient.grpc`'s `as_numpy` reads. No gRPC import here: only the messages (protobuf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format

from app.oip import grpc_predict_v2_pb2 as pb
from app.oip.codec import BYTES, DecodedRequest, OutputTensor, binary_elements, binary_output, decode_parsed
from app.oip.errors import ProtocolError
from app.oip.model_config import ModelConfig
from app.oip.schemas import InferenceRequest, ModelMetadata, Parameters, RequestInput, RequestOutput

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}
"""The field of `InferTensorContents` that holds each datatype's elements (FP16 has none: raw contents only)."""


def decode_infer_request(request: pb.ModelInferRequest) -> DecodedRequest:
    """The request's inputs and requested outputs, checked as a REST request's are. Raises `ProtocolError`."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: send one per input, "
            "in the inputs' order, or every input's data in its contents"
        )
    if not request.inputs:
        raise ProtocolError("the request has no inputs: send exactly one, 'pixels' or 'images'")
    inputs, chunks = [], []
    for index, tensor in enumerate(request.inputs):
        if any(size < 0 for size in tensor.shape):
            raise ProtocolError(f"input {tensor.name!r}: shape {list(tensor.shape)} has a negative dimension")
        parameters = _parameters(tensor.parameters)
        data: list[Any] | None = None
        chunk: bytes | None
        if raw:
            if tensor.HasField("contents"):
                raise ProtocolError(f"input {tensor.name!r} has contents, but raw_input_contents is used: send one")
            chunk = raw[index]
        else:
            data, chunk = _contents(tensor)
        if chunk is not None:
            parameters["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        inputs.append(
            RequestInput.model_construct(
                name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape), parameters=parameters, data=data
            )
        )
    outputs = [
        RequestOutput.model_construct(name=output.name, parameters=_parameters(output.parameters))
        for output in request.outputs
    ]
    parsed = InferenceRequest.model_construct(
        id=request.id or None, parameters=_parameters(request.parameters), inputs=inputs, outputs=outputs or None
    )
    return decode_parsed(parsed, memoryview(b"".join(chunks)), binary_allowed=True)


def encode_infer_response(
    *, model_name: str, model_version: str, request_id: str | None, outputs: Sequence[OutputTensor]
) -> pb.ModelInferResponse:
    """The answer: each output's name, datatype and shape, its data in `raw_output_contents` (in order)."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    for output in outputs:
        shape, data = binary_output(output)
        response.outputs.add(name=output.name, datatype=output.datatype, shape=shape)
        response.raw_output_contents.append(data)
    return response


def model_metadata_message(metadata: ModelMetadata) -> pb.ModelMetadataResponse:
    """The REST metadata object as its gRPC message."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions,
        platform=metadata.platform,
        inputs=[tensor(name=spec.name, datatype=spec.datatype, shape=spec.shape) for spec in metadata.inputs],
        outputs=[tensor(name=spec.name, datatype=spec.datatype, shape=spec.shape) for spec in metadata.outputs],
    )


def model_config_message(config: ModelConfig) -> pb.ModelConfigResponse:
    """The REST model configuration as its gRPC message: the JSON's field names and enum names are the proto's."""
    return pb.ModelConfigResponse(config=json_format.ParseDict(config.model_dump(), pb.ModelConfig()))


def _parameters(parameters: Mapping[str, pb.InferParameter]) -> Parameters:
    """A parameters map as plain values (bool, int, str or float); a parameter with no value set is left out."""
    plain: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            plain[key] = getattr(parameter, choice)
    return plain


def _contents(tensor: pb.ModelInferRequest.InferInputTensor) -> tuple[list[Any] | None, bytes | None]:
    """An input's typed contents: numbers as a flat list (JSON's `data`), BYTES as binary data (raw files)."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:  # an unknown datatype (the checks name it), or FP16, which has no typed contents
        if tensor.datatype == "FP16":
            raise ProtocolError(f"input {tensor.name!r}: FP16 data has no typed contents; send it raw")
        return [], None
    elements = getattr(tensor.contents, field)
    if tensor.datatype == BYTES:
        return None, binary_elements(list(elements))
    return list(elements), None
