"""The OIP codec against the real client's encoder and decoder (`tritonclient.http`), and against malformed
bodies: every malformed body is a `ProtocolError` (400) that says what is wrong, never another exception."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import np_to_triton_dtype

from app.oip.codec import (
    BYTES,
    FIXED_SIZE,
    HEADER_LENGTH,
    DecodedRequest,
    OutputTensor,
    decode_request,
    encode_response,
)
from app.oip.errors import ProtocolError

NUMPY_TYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
NUMPY_TYPES += [np.float16, np.float32, np.float64]


def sample(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random values over the dtype's whole range (both ends included), so that nothing is clipped unseen."""
    rng = np.random.default_rng(seed)
    if dtype is np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        values.flat[0], values.flat[-1] = info.min, info.max
        return values
    return rng.standard_normal(shape).astype(dtype)


def client_body(inputs: list[triton.InferInput], outputs: list[triton.InferRequestedOutput] | None = None, **kw):
    """What `tritonclient.http` would POST: (body, Inference-Header-Content-Length or None)."""
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs, **kw)
    return body, None if json_size is None else str(json_size)


def tensor_input(name: str, array: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    return tensor.set_data_from_numpy(array, binary_data=binary)


def decode(body: bytes | str, header_length: str | int | None = None) -> DecodedRequest:
    raw = body.encode() if isinstance(body, str) else body
    return decode_request(raw, None if header_length is None else str(header_length))


def json_request(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def pixels_input(**fields: Any) -> dict[str, Any]:
    return {"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2], "data": [0, 1, 2, 255]} | fields


def rejected(body: bytes | str, header_length: str | int | None = None, *, decode_data: bool = True) -> str:
    """The message of the ProtocolError that decoding `body` (and, with `decode_data`, its data) raises."""
    with pytest.raises(ProtocolError) as caught:
        request = decode(body, header_length)
        if decode_data:
            for tensor in request.inputs:
                tensor.to_elements() if tensor.datatype == BYTES else tensor.to_array()
    assert caught.value.status_code == 400
    return str(caught.value)


# --- round trips with the real client ------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dtype", NUMPY_TYPES, ids=lambda dtype: np.dtype(dtype).name)
def test_every_fixed_size_datatype_decodes_to_what_the_client_sent(dtype, binary):
    array = sample(dtype, (3, 4, 5))
    body, length = client_body([tensor_input("x", array, binary)])
    [tensor] = decode(body, length).inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", np_to_triton_dtype(array.dtype), (3, 4, 5))
    decoded = tensor.to_array()
    assert decoded.dtype == array.dtype.newbyteorder("<") and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_bytes_elements_decode_to_what_the_client_sent(binary):
    elements = [b"", b"a", "é≠ digits".encode(), b"x" * 1000, b"\x00\x01\xff" if binary else b"plain"]
    array = np.array(elements, dtype=np.object_).reshape(5, 1)
    body, length = client_body([tensor_input("s", array, binary)])
    [tensor] = decode(body, length).inputs
    assert tensor.to_elements() == elements


def test_inputs_take_their_binary_data_in_order_and_json_inputs_none():
    first, second = sample(np.uint8, (2, 3), seed=1), sample(np.int64, (4,), seed=2)
    middle = sample(np.float32, (2,), seed=3)
    inputs = [tensor_input("a", first, True), tensor_input("m", middle, False), tensor_input("b", second, True)]
    body, length = client_body(inputs)
    a, m, b = decode(body, length).inputs
    np.testing.assert_array_equal(a.to_array(), first)
    np.testing.assert_array_equal(m.to_array(), middle)
    np.testing.assert_array_equal(b.to_array(), second)


def test_nested_json_data_is_read_row_major():
    body = json_request({"name": "x", "datatype": "INT32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]})
    np.testing.assert_array_equal(decode(body).inputs[0].to_array(), [[1, 2, 3], [4, 5, 6]])
    body = json_request({"name": "s", "datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]})
    assert decode(body).inputs[0].to_elements() == [b"a", b"b"]


def test_requested_outputs_and_their_binary_flags():
    array = sample(np.uint8, (1, 2))
    outputs = [triton.InferRequestedOutput("b", binary_data=True), triton.InferRequestedOutput("j", binary_data=False)]
    request = decode(*client_body([tensor_input("x", array, True)], outputs, request_id="r-1"))
    assert request.id == "r-1"
    assert [(output.name, output.binary) for output in request.outputs] == [("b", True), ("j", False)]


def test_a_class_count_asks_for_classification():
    outputs = [triton.InferRequestedOutput("p", class_count=3), triton.InferRequestedOutput("d")]
    request = decode(*client_body([tensor_input("x", sample(np.uint8, (1, 2)), True)], outputs))
    assert [(output.name, output.classification) for output in request.outputs] == [("p", 3), ("d", None)]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_two_dimensional_bytes_output_keeps_its_shape(binary):
    classes = np.array([[b"0.9:7", b"0.1:1"], [b"0.6:3", b"0.4:8"]], dtype=np.object_)
    encoded = encode_response(
        model_name="m", model_version="1", request_id=None, outputs=[OutputTensor("c", BYTES, classes, binary)]
    )
    result = triton.InferenceServerClient.parse_response_body(encoded.body, header_length=encoded.header_length)
    assert result.get_output("c")["shape"] == [2, 2]
    got = result.as_numpy("c")
    assert [[item if isinstance(item, bytes) else item.encode() for item in row] for row in got] == classes.tolist()


def test_no_requested_outputs_means_all_with_the_request_default():
    request = decode(*client_body([tensor_input("x", sample(np.uint8, (1,)), True)]))
    assert request.outputs is None and request.binary_output is True  # what tritonclient asks for by default
    request = decode(json_request(pixels_input()))
    assert request.outputs is None and request.binary_output is False
    request = decode(json_request(pixels_input(), outputs=[{"name": "a"}], parameters={"binary_data_output": True}))
    assert request.outputs[0].binary is True  # an output without binary_data follows the request's default


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_responses_read_back_by_the_client(binary):
    outputs = [
        OutputTensor("p", "FP32", sample(np.float32, (3, 10)), binary),
        OutputTensor("d", "INT64", np.array([7, 0, 9]), not binary),
        OutputTensor("ok", "BOOL", np.array([True, False, True]), binary),
        OutputTensor("s", BYTES, [b"seven", b"", b"nine"], binary),
    ]
    encoded = encode_response(model_name="mnist", model_version="v1", request_id="42", outputs=outputs)
    assert encoded.header_length is not None  # some output is binary in both cases
    assert encoded.media_type == "application/octet-stream"
    result = triton.InferenceServerClient.parse_response_body(encoded.body, header_length=encoded.header_length)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("mnist", "v1", "42")
    assert [output["name"] for output in response["outputs"]] == ["p", "d", "ok", "s"]
    for output in outputs:
        got = result.as_numpy(output.name)
        if output.datatype == BYTES:  # the client gives str for JSON strings, bytes for binary elements
            assert [item if isinstance(item, bytes) else item.encode() for item in got] == output.data
        else:
            np.testing.assert_array_equal(got, output.data)
        assert ("binary_data_size" in (result.get_output(output.name).get("parameters") or {})) == output.binary


def test_an_all_json_response_has_no_header_length():
    encoded = encode_response(
        model_name="m", model_version="1", request_id=None, outputs=[OutputTensor("d", "INT64", np.array([3]), False)]
    )
    assert encoded.header_length is None and encoded.media_type == "application/json"
    assert json.loads(encoded.body) == {
        "model_name": "m",
        "model_version": "1",
        "outputs": [{"name": "d", "datatype": "INT64", "shape": [1], "data": [3]}],
    }


# --- malformed framing ----------------------------------------------------------------------------------------


def binary_pixels(count: int = 1) -> tuple[bytes, str]:
    return client_body([tensor_input("pixels", sample(np.uint8, (count, 28, 28)), True)])


@pytest.mark.parametrize("value", ["abc", "-5", "+5", "1_0", "1e3", "", "٣", "0x10"])
def test_a_header_length_that_is_not_a_plain_number_is_refused(value):
    body, _ = binary_pixels()
    assert HEADER_LENGTH in rejected(body, value)


def test_a_header_length_larger_than_the_body_is_refused():
    body, length = binary_pixels()
    message = rejected(body, len(body) + 1)
    assert f"({len(body) + 1}) is larger than the body ({len(body)} bytes)" in message


def test_a_header_length_that_cuts_the_json_is_refused():
    body, length = binary_pixels()
    assert "not valid JSON" in rejected(body, int(length) - 3)
    assert f"{HEADER_LENGTH} is 0" in rejected(body, 0)


def test_binary_data_without_the_header_is_refused_with_a_hint():
    body, _ = binary_pixels()
    assert f"needs the {HEADER_LENGTH} header" in rejected(body, None)
    header = json_request(pixels_input(data=None, parameters={"binary_data_size": 4}))
    assert f"has no {HEADER_LENGTH} header" in rejected(header, None)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(-1, "must not be negative"), (1.5, "must be an integer"), (True, "must be an integer"), ("4", "an integer")],
)
def test_a_bad_binary_data_size_is_refused(size, expected):
    header = json_request(pixels_input(data=None, parameters={"binary_data_size": size}))
    assert expected in rejected(header + b"\x00" * 4, len(header))


def test_binary_data_sizes_past_the_end_or_short_of_it_are_refused():
    header = json_request(pixels_input(data=None, parameters={"binary_data_size": 5}))
    assert "goes past the end of the body (only 4 bytes" in rejected(header + bytes(4), len(header))
    header = json_request(pixels_input(data=None, parameters={"binary_data_size": 4}))
    assert "2 bytes after the JSON belong to no input" in rejected(header + bytes(6), len(header))


def test_a_binary_data_size_that_does_not_match_the_shape_is_refused():
    header = json_request(pixels_input(data=None, parameters={"binary_data_size": 3}))
    message = rejected(header + bytes(3), len(header))
    assert message == "input 'pixels': binary_data_size is 3 bytes, but shape [1, 2, 2] of UINT8 needs 4"


def test_data_and_binary_data_at_once_or_neither_is_refused():
    header = json_request(pixels_input(parameters={"binary_data_size": 4}))
    assert "both 'data' and binary_data_size" in rejected(header + bytes(4), len(header))
    assert "has no 'data' and no binary_data_size" in rejected(json_request(pixels_input(data=None)))


def bytes_body(payload: bytes, count: int) -> tuple[bytes, int]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "datatype": "BYTES",
                    "shape": [count],
                    "parameters": {"binary_data_size": len(payload)},
                }
            ]
        }
    ).encode()
    return header + payload, len(header)


@pytest.mark.parametrize(
    ("payload", "count", "expected"),
    [
        (struct.pack("<I", 10) + b"short", 1, "element 0: its length prefix says 10 bytes, but only 5 are left"),
        (struct.pack("<I", 4) + b"abcd" + b"\x02\x00", 2, "element 1: its length prefix is past the end"),
        (struct.pack("<I", 2**32 - 1) + b"abcd", 1, "says 4294967295 bytes, but only 4 are left"),
        (struct.pack("<I", 1) + b"ab", 1, "1 bytes follow the last of its 1 BYTES elements"),
        (b"\x00" * 7, 2, "each at least 4 bytes, but binary_data_size is 7"),
    ],
    ids=["overrun", "truncated prefix", "huge length", "trailing bytes", "too short for the count"],
)
def test_bytes_elements_that_overrun_their_data_are_refused(payload, count, expected):
    message = rejected(*bytes_body(payload, count))
    assert message.startswith("input 'images': ") and expected in message


# --- malformed JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "empty body"),
        (b"\xff\xfe{", "not valid JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b'{"inputs": []}', "inputs: List should have at least 1 item"),
        (b'{"outputs": []}', "inputs is missing"),
        (b'{"inputs": [7]}', "inputs[0] must be a JSON object"),
        (b'{"inputs": {"name": "pixels"}}', "inputs must be a list"),
        (json_request(pixels_input(name=3)), "inputs[0].name: Input should be a valid string"),
        (json_request(pixels_input(shape=[1, -2, 2])), "inputs[0] ('pixels').shape[1]: Input should be greater"),
        (json_request(pixels_input(shape=[1, 2.0, 2])), "inputs[0] ('pixels').shape[1]: Input should be a valid int"),
        (json_request(pixels_input(shape="1,2,2")), "inputs[0] ('pixels').shape must be a list"),
        (json_request(pixels_input(datatype="FLOAT32")), "unknown or unsupported datatype 'FLOAT32'"),
        (json_request(pixels_input(), pixels_input()), "input 'pixels' is sent twice"),
        (json_request(pixels_input(), outputs=[{"name": "a"}, {"name": "a"}]), "output 'a' is requested twice"),
        (json_request(pixels_input(), id=42), "id: Input should be a valid string"),
        (json_request(pixels_input(parameters={"shared_memory_region": "r"})), "shared memory is not supported"),
        (
            json_request(pixels_input(), outputs=[{"name": "a", "parameters": {"classification": 0}}]),
            "output 'a': parameter classification must be at least 1 (got 0)",
        ),
        (
            json_request(pixels_input(), outputs=[{"name": "a", "parameters": {"classification": "3"}}]),
            "output 'a': parameter classification must be an integer",
        ),
        (json_request(pixels_input(), outputs=[{"name": "a", "parameters": {"binary_data": 1}}]), "must be a boolean"),
        (json_request(pixels_input(), parameters={"binary_data_output": "yes"}), "must be a boolean"),
    ],
)
def test_malformed_json_is_refused_naming_the_place(body, expected):
    assert expected in rejected(body)


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("UINT8", [0, 1, 2], "'data' has 3 elements, but shape [1, 2, 2] needs 4"),
        ("UINT8", [0, 1, 2, 256], "outside UINT8's range 0…255"),
        ("UINT8", [0, 1, 2, -1], "outside UINT8's range"),
        ("INT8", [0, 1, 2, 128], "outside INT8's range -128…127"),
        ("UINT8", [0, 1, 2, 3.5], "must hold integers only"),
        ("UINT8", [0, 1, 2, "3"], "must hold integers only"),
        ("UINT8", [0, 1, 2, None], "must hold integers only"),
        ("UINT8", [0, 1, 2, 2**70], "outside UINT8's range"),
        ("UINT64", [0, 1, 2, 2**64], "outside UINT64's range"),
        ("UINT64", [0, 1, 2.5, 2**63], "must hold integers only"),
        ("BOOL", [0, 1, 0, 1], "must hold booleans only"),
        ("FP32", [0, 1, "x", 1], "must hold numbers only"),
        ("UINT8", [[0, 1], [2]], "not a list of numbers of one nesting depth"),
        ("BYTES", ["a", "b", "c", 4], "element 3: a BYTES element in JSON must be a string"),
        ("BYTES", ["a", "b", "c"], "'data' has 3 elements, but shape [1, 2, 2] needs 4"),
        ("BYTES", [[[["a", "b", "c", "d"]]]], "nested deeper than the tensor's shape"),
    ],
)
def test_json_data_that_does_not_fit_its_datatype_or_shape_is_refused(datatype, data, expected):
    message = rejected(json_request(pixels_input(datatype=datatype, data=data)))
    assert message.startswith("input 'pixels': ") and expected in message


def test_floats_accept_integers_in_json():
    body = json_request(pixels_input(datatype="FP32", data=[0, 1.5, -2, 3]))
    np.testing.assert_array_equal(decode(body).inputs[0].to_array().reshape(-1), [0, 1.5, -2, 3])


# --- fuzzing: whatever the bytes, a ProtocolError or a request ------------------------------------------------


def decode_all(body: bytes, header_length: str | None) -> None:
    """Decode a body as the route would; only success or ProtocolError (400) is allowed."""
    try:
        request = decode_request(body, header_length)
        for tensor in request.inputs:
            tensor.to_elements() if tensor.datatype == BYTES else tensor.to_array()
    except ProtocolError as exc:
        assert exc.status_code == 400 and str(exc)


def test_mutated_binary_bodies_never_raise_anything_but_protocol_errors():
    images = np.array([b"\x89PNG fake", b"", b"more bytes"], dtype=np.object_)
    inputs = [tensor_input("pixels", sample(np.uint8, (2, 28, 28)), True), tensor_input("images", images, True)]
    inputs.append(tensor_input("n", sample(np.float32, (3,)), False))
    body, length = client_body(inputs, [triton.InferRequestedOutput("digit")])
    rng = random.Random(0)
    for _ in range(3000):
        mutated, header = bytearray(body), length
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            position = rng.randrange(len(mutated))
            if choice < 0.5:
                mutated[position] = rng.randrange(256)
            elif choice < 0.7:
                del mutated[position : position + rng.randint(1, 40)]
            elif choice < 0.85:
                mutated[position:position] = rng.randbytes(rng.randint(1, 8))
            else:
                header = str(int(length) + rng.randint(-20, 20))
        decode_all(bytes(mutated), header)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choices = [None, True, -1, 0, 7, 2**70, 1.5, "", "UINT8", "BYTES", "pixels", [], {}, [1, 2], ["a"], [[1], [2, 3]]]
    if depth < 2 and rng.random() < 0.2:
        return {
            rng.choice(["name", "datatype", "shape", "data", "parameters", "binary_data_size"]): random_value(
                rng, depth + 1
            )
        }
    return rng.choice(choices)


def test_mutated_json_structures_never_raise_anything_but_protocol_errors():
    rng = random.Random(1)
    base = {
        "id": "1",
        "parameters": {"binary_data_output": True},
        "inputs": [pixels_input(), {"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],
        "outputs": [{"name": "digit", "parameters": {"binary_data": False}}],
    }
    paths = [("id",), ("parameters",), ("parameters", "binary_data_output"), ("inputs",), ("outputs",)]
    for index in (0, 1):
        paths += [("inputs", index, key) for key in ("name", "datatype", "shape", "data", "parameters")]
        paths += [("inputs", index, "shape", 0), ("inputs", index, "data", 0)]
    paths += [("outputs", 0, "name"), ("outputs", 0, "parameters"), ("outputs", 0, "parameters", "binary_data")]
    for _ in range(3000):
        request = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            *parents, key = rng.choice(paths)
            node = request
            try:
                for parent in parents:
                    node = node[parent]
                node[key] = random_value(rng)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed the parent
        body = json.dumps(request).encode()
        if rng.random() < 0.3:  # also as the JSON part of a binary body with a stray chunk
            decode_all(body + rng.randbytes(rng.randint(0, 8)), str(len(body)))
        else:
            decode_all(body, None)


@pytest.mark.parametrize("datatype", list(FIXED_SIZE))
def test_every_datatype_answers_in_json_as_the_client_reads_it(datatype):
    dtype = FIXED_SIZE[datatype]
    values = sample(dtype.type, (2, 2))
    encoded = encode_response(
        model_name="m", model_version="1", request_id=None, outputs=[OutputTensor("x", datatype, values, False)]
    )
    result = triton.InferenceServerClient.parse_response_body(encoded.body)
    np.testing.assert_array_equal(result.as_numpy("x"), values)
