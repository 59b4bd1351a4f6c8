"""Open Inference Protocol v2 tensors on the wire: JSON, and Triton's binary tensor data extension.

A body is one JSON object, optionally followed by raw tensor data: each input (each output, in an answer) whose
`parameters.binary_data_size` is set owns that many bytes, in the order the tensors are listed, and the HTTP
header `Inference-Header-Content-Length` gives the length of the JSON part. Binary data is little-endian and
row-major; a BYTES element is a 4-byte little-endian length followed by its bytes. In JSON, tensor data is a
flat (or nested) row-major list, and a BYTES element is a string.

Everything here reads untrusted bytes, so every way a body can be malformed ends in `ProtocolError` (400) with a
message naming the input, never another exception. Decoding is in two steps so that a caller can check a
tensor's name, datatype and shape (cheap) before its data is decoded: `decode_request` checks the framing and
the JSON; `InputTensor.to_array` / `to_elements` then decode and check the data. No HTTP framework here: the
route hands in the body and the header's value.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.oip.errors import ProtocolError
from app.oip.schemas import InferenceRequest, Parameters

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSION = "binary_tensor_data"
"""The name servers list in their metadata's `extensions` when they speak the binary tensor data extension."""

FIXED_SIZE = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Datatypes whose elements have one size, and their little-endian numpy dtypes."""
BYTES = "BYTES"
DATATYPES = (*FIXED_SIZE, BYTES)
JSON_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}
"""numpy kinds a JSON list may parse to, per target kind: no floats for integers, only booleans for BOOL."""
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, eq=False)
class InputTensor:
    """An input as sent: its name, datatype and shape, and its data, not yet decoded (see `to_array`)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    json_data: list[Any] | None
    binary_data: memoryview | None

    @property
    def count(self) -> int:
        """The number of elements its shape declares."""
        return math.prod(self.shape)

    def to_array(self) -> np.ndarray:
        """The data of a fixed-size datatype as an array of `shape` (read-only when it is the body's bytes)."""
        dtype = FIXED_SIZE[self.datatype]
        if self.binary_data is not None:
            expected = self.count * dtype.itemsize
            if len(self.binary_data) != expected:
                raise self._error(
                    f"binary_data_size is {len(self.binary_data)} bytes, but shape {list(self.shape)} of "
                    f"{self.datatype} needs {expected}"
                )
            return np.frombuffer(self.binary_data, dtype=dtype).reshape(self.shape)
        return self._json_array(dtype)

    def to_elements(self) -> list[bytes]:
        """The elements of a BYTES tensor, in row-major order (a JSON string becomes its UTF-8 bytes)."""
        if self.binary_data is None:
            return self._json_elements()
        buffer, count = self.binary_data, self.count
        if count * _LENGTH.size > len(buffer):
            raise self._error(
                f"shape {list(self.shape)} has {count} BYTES elements, each at least {_LENGTH.size} bytes, "
                f"but binary_data_size is {len(buffer)}"
            )
        elements, offset = [], 0
        for index in range(count):
            if offset + _LENGTH.size > len(buffer):
                raise self._error(f"element {index}: its length prefix is past the end of the binary data")
            (length,) = _LENGTH.unpack_from(buffer, offset)
            offset += _LENGTH.size
            if length > len(buffer) - offset:
                raise self._error(
                    f"element {index}: its length prefix says {length} bytes, but only {len(buffer) - offset} "
                    "are left in the binary data"
                )
            elements.append(bytes(buffer[offset : offset + length]))
            offset += length
        if offset != len(buffer):
            raise self._error(f"{len(buffer) - offset} bytes follow the last of its {count} BYTES elements")
        return elements

    def _json_array(self, dtype: np.dtype) -> np.ndarray:
        try:
            values = np.asarray(self.json_data)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise self._error("'data' is not a list of numbers of one nesting depth") from None
        if values.size != self.count:
            raise self._error(f"'data' has {values.size} elements, but shape {list(self.shape)} needs {self.count}")
        if dtype.kind in "iu" and values.dtype.kind in "fO":  # numpy took ints beyond int64 for floats or objects
            values = self._exact_integers(dtype, values.ndim)
        if values.size and values.dtype.kind not in JSON_KINDS[dtype.kind]:
            wanted = {"b": "booleans", "u": "integers", "i": "integers", "f": "numbers"}[dtype.kind]
            raise self._error(f"'data' of a {self.datatype} tensor must hold {wanted} only")
        if dtype.kind in "iu" and values.size:
            limits = np.iinfo(dtype)
            if values.min() < limits.min or values.max() > limits.max:
                raise self._error(f"'data' holds values outside {self.datatype}'s range {limits.min}…{limits.max}")
        return values.astype(dtype).reshape(self.shape)

    def _exact_integers(self, dtype: np.dtype, depth: int) -> np.ndarray:
        flat = list(_flatten(self.json_data or [], depth=depth))
        if not all(type(value) is int for value in flat):
            raise self._error(f"'data' of a {self.datatype} tensor must hold integers only")
        try:
            return np.array(flat, dtype=dtype)
        except OverflowError:
            limits = np.iinfo(dtype)
            raise self._error(
                f"'data' holds values outside {self.datatype}'s range {limits.min}…{limits.max}"
            ) from None

    def _json_elements(self) -> list[bytes]:
        try:
            elements = list(_flatten(self.json_data or [], depth=len(self.shape)))
        except ProtocolError as exc:
            raise self._error(str(exc)) from None
        if len(elements) != self.count:
            raise self._error(f"'data' has {len(elements)} elements, but shape {list(self.shape)} needs {self.count}")
        for index, element in enumerate(elements):
            if not isinstance(element, str):
                raise self._error(f"element {index}: a BYTES element in JSON must be a string")
        return [element.encode("utf-8", errors="surrogatepass") for element in elements]

    def _error(self, message: str) -> ProtocolError:
        return ProtocolError(f"input {self.name!r}: {message}")


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for, whether it wants it as binary data, and `classification`: the number of
    top classes asked for instead of the tensor (Triton's classification extension), or None."""

    name: str
    binary: bool
    classification: int | None = None


@dataclass(frozen=True, eq=False)
class DecodedRequest:
    """An inference request whose framing and JSON are valid; its inputs' data is decoded on demand.

    `outputs`: None when the client asked for every output, each then binary when `binary_output` is true.
    """

    id: str | None
    inputs: tuple[InputTensor, ...]
    outputs: tuple[RequestedOutput, ...] | None
    binary_output: bool


@dataclass(frozen=True, eq=False)
class OutputTensor:
    """One output of an answer: an array of a fixed-size datatype; for BYTES, a sequence of bytes (shape [N]) or
    an object array of bytes (its own shape)."""

    name: str
    datatype: str
    data: np.ndarray | Sequence[bytes]
    binary: bool


@dataclass(frozen=True)
class EncodedBody:
    """An answer's bytes; `header_length` (for the `Inference-Header-Content-Length` header) when binary follows."""

    body: bytes
    header_length: int | None

    @property
    def media_type(self) -> str:
        return "application/json" if self.header_length is None else "application/octet-stream"


def decode_request(body: bytes, header_length: str | None) -> DecodedRequest:
    """The inference request in `body`; `header_length` is the `Inference-Header-Content-Length` header, if sent."""
    binary = memoryview(body)[0:0]
    if header_length is not None:
        length = _parse_length(header_length, len(body))
        body, binary = body[:length], memoryview(body)[length:]
    request = _parse_json(body, binary_follows=header_length is not None)
    return decode_parsed(request, binary, binary_allowed=header_length is not None)


def decode_parsed(request: InferenceRequest, binary: memoryview, *, binary_allowed: bool) -> DecodedRequest:
    """An inference request already parsed into `InferenceRequest`, with the binary data that follows its JSON
    (or, over gRPC, its inputs' raw contents one after the other); `binary_allowed`: whether any may follow (over
    HTTP, only with the `Inference-Header-Content-Length` header). Every check of `decode_request` but the JSON's."""
    inputs, offset = [], 0
    names = set()
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in names:
            raise ProtocolError(f"input {name!r} is sent twice")
        names.add(name)
        if tensor.datatype not in DATATYPES:
            raise ProtocolError(
                f"input {name!r}: unknown or unsupported datatype {tensor.datatype!r}; one of {', '.join(DATATYPES)}"
            )
        parameters = tensor.parameters or {}
        _refuse_shared_memory(parameters, f"input {name!r}")
        size = _parameter(parameters, "binary_data_size", int, f"input {name!r}")
        chunk = None
        if size is not None:
            if size < 0:
                raise ProtocolError(f"input {name!r}: binary_data_size must not be negative (got {size})")
            if not binary_allowed:
                raise ProtocolError(
                    f"input {name!r} has binary_data_size but the request has no {HEADER_LENGTH} header: send the "
                    "length of the JSON part in it, and the binary data after the JSON"
                )
            if tensor.data is not None:
                raise ProtocolError(f"input {name!r} has both 'data' and binary_data_size: send one of them")
            if offset + size > len(binary):
                raise ProtocolError(
                    f"input {name!r}: binary_data_size {size} goes past the end of the body (only "
                    f"{len(binary) - offset} bytes of binary data left)"
                )
            chunk, offset = binary[offset : offset + size], offset + size
        elif tensor.data is None:
            raise ProtocolError(f"input {name!r} (inputs[{index}]) has no 'data' and no binary_data_size")
        inputs.append(InputTensor(name, tensor.datatype, tuple(tensor.shape), tensor.data, chunk))
    if offset != len(binary):
        raise ProtocolError(
            f"{len(binary) - offset} bytes after the JSON belong to no input: the inputs' binary_data_size add up "
            f"to {offset}"
        )
    binary_output = _parameter(request.parameters or {}, "binary_data_output", bool, "the request") or False
    return DecodedRequest(request.id, tuple(inputs), _requested_outputs(request, binary_output), binary_output)


def encode_response(
    *, model_name: str, model_version: str, request_id: str | None, outputs: Sequence[OutputTensor]
) -> EncodedBody:
    """The answer's body: JSON, followed by the data of the outputs asked for in binary, in order."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        header["id"] = request_id
    described, chunks = [], []
    for output in outputs:
        shape, flat = _shape_and_flat(output)
        tensor: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": shape}
        if output.binary:
            chunk = _binary(output.datatype, flat)
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = _json_data(output.datatype, flat)
        described.append(tensor)
    header["outputs"] = described
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if not chunks:
        return EncodedBody(encoded, None)
    return EncodedBody(b"".join((encoded, *chunks)), len(encoded))


def binary_output(output: OutputTensor) -> tuple[list[int], bytes]:
    """An output's shape and its data laid out as binary tensor data (gRPC's raw output contents are the same)."""
    shape, flat = _shape_and_flat(output)
    return shape, _binary(output.datatype, flat)


def binary_elements(elements: Sequence[bytes]) -> bytes:
    """BYTES elements as binary tensor data: each a 4-byte little-endian length, then its bytes."""
    return _binary(BYTES, elements)


def _parse_length(value: str, body_size: int) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise ProtocolError(f"{HEADER_LENGTH} must be a non-negative whole number of bytes (got {value[:40]!r})")
    length = int(value)
    if length > body_size:
        raise ProtocolError(f"{HEADER_LENGTH} ({length}) is larger than the body ({body_size} bytes)")
    return length


def _parse_json(header: bytes, *, binary_follows: bool) -> InferenceRequest:
    if not header:
        where = f"{HEADER_LENGTH} is 0" if binary_follows else "empty body"
        raise ProtocolError(f"{where}: expected an inference request, a JSON object with 'inputs'")
    try:
        return InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in {"json_invalid", "json_type"}:
            hint = "" if binary_follows else f" (binary tensor data needs the {HEADER_LENGTH} header)"
            raise ProtocolError(f"the request is not valid JSON{hint}: {first['msg']}") from None
        where, message = _where(first["loc"], header), _MESSAGES.get(first["type"])
        detail = f"{where} {message}" if message else f"{where}: {first['msg']}"
        raise ProtocolError(f"invalid inference request: {detail}") from None


_MESSAGES = {"model_type": "must be a JSON object", "missing": "is missing", "list_type": "must be a list"}
"""Pydantic's messages that read better in JSON's words ("a valid dictionary or instance of RequestInput")."""


def _where(loc: tuple[int | str, ...], header: bytes) -> str:
    """`inputs[0] ('pixels').shape[1]` for an error's location, naming the tensor when the JSON names it."""
    if not loc:
        return "the body"
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if len(loc) >= 2 and loc[0] in {"inputs", "outputs"} and isinstance(loc[1], int):
        try:  # the error path only: parse again to find the tensor's name
            name = json.loads(header)[loc[0]][loc[1]]["name"]
        except Exception:  # noqa: BLE001 - no name to add; the index still says which tensor
            name = None
        if isinstance(name, str):
            path = path.replace(f"{loc[0]}[{loc[1]}]", f"{loc[0]}[{loc[1]}] ({name!r})", 1)
    return path


def _parameter(parameters: Parameters, key: str, kind: type, owner: str) -> Any:
    value = parameters.get(key)
    if value is not None and (type(value) is not kind):  # bool is an int: compare types exactly
        raise ProtocolError(f"{owner}: parameter {key} must be {'a boolean' if kind is bool else 'an integer'}")
    return value


def _refuse_shared_memory(parameters: Parameters, owner: str) -> None:
    if any(key.startswith("shared_memory") for key in parameters):
        raise ProtocolError(f"{owner}: shared memory is not supported by this server; send the data in the body")


def _requested_outputs(request: InferenceRequest, binary_output: bool) -> tuple[RequestedOutput, ...] | None:
    if request.outputs is None:
        return None
    outputs, names = [], set()
    for output in request.outputs:
        if output.name in names:
            raise ProtocolError(f"output {output.name!r} is requested twice")
        names.add(output.name)
        parameters = output.parameters or {}
        owner = f"output {output.name!r}"
        _refuse_shared_memory(parameters, owner)
        classes = _parameter(parameters, "classification", int, owner)
        if classes is not None and classes < 1:
            raise ProtocolError(f"{owner}: parameter classification must be at least 1 (got {classes})")
        binary = _parameter(parameters, "binary_data", bool, owner)
        outputs.append(RequestedOutput(output.name, binary_output if binary is None else binary, classes))
    return tuple(outputs)


def _flatten(data: list[Any], depth: int) -> Any:
    """The elements of a flat or nested JSON list (nested at most `depth` deep), in row-major order."""
    for item in data:
        if isinstance(item, list):
            if depth <= 1:
                raise ProtocolError("'data' is nested deeper than the tensor's shape")
            yield from _flatten(item, depth - 1)
        else:
            yield item


def _shape_and_flat(output: OutputTensor) -> tuple[list[int], np.ndarray | Sequence[bytes]]:
    """The output's shape and its elements in row-major order (BYTES: a sequence is one row of elements, an
    object array keeps its shape)."""
    if output.datatype == BYTES and not isinstance(output.data, np.ndarray):
        return [len(output.data)], output.data
    array = np.asarray(output.data)
    return list(array.shape), array.reshape(-1)


def _binary(datatype: str, flat: np.ndarray | Sequence[bytes]) -> bytes:
    if datatype == BYTES:
        return b"".join(_LENGTH.pack(len(element)) + bytes(element) for element in flat)
    return np.ascontiguousarray(flat, dtype=FIXED_SIZE[datatype]).tobytes()


def _json_data(datatype: str, flat: np.ndarray | Sequence[bytes]) -> list[Any]:
    if datatype == BYTES:
        return [bytes(element).decode("utf-8", errors="replace") for element in flat]
    return np.asarray(flat, dtype=FIXED_SIZE[datatype]).tolist()
