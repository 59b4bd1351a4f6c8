"""gRPC messages ↔ the protocol's objects (`app.oip.grpc_codec`): raw and typed contents decode to what a REST
body with the same tensors decodes to, every malformed message is a `ProtocolError` naming the input, and outputs
go back as raw little-endian contents."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.oip import grpc_predict_v2_pb2 as pb
from app.oip.codec import OutputTensor
from app.oip.errors import ProtocolError
from app.oip.grpc_codec import decode_infer_request, encode_infer_response, model_metadata_message
from app.oip.schemas import MetadataTensor, ModelMetadata


def request_with(name: str, datatype: str, shape: list[int], **fields) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mnist", id="7", **fields)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    return request


def test_raw_pixels_decode_to_the_array_sent():
    pixels = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
    decoded = decode_infer_request(request_with("pixels", "UINT8", [2, 28, 28], raw_input_contents=[pixels.tobytes()]))
    [tensor] = decoded.inputs
    assert decoded.id == "7" and decoded.outputs is None
    assert (tensor.name, tensor.datatype, tensor.shape) == ("pixels", "UINT8", (2, 28, 28))
    np.testing.assert_array_equal(tensor.to_array(), pixels)


def test_typed_pixels_decode_like_raw_ones_and_keep_uint8_range_checks():
    request = request_with("pixels", "UINT8", [1, 2, 2])
    request.inputs[0].contents.uint_contents.extend([0, 7, 200, 255])
    np.testing.assert_array_equal(decode_infer_request(request).inputs[0].to_array(), [[[0, 7], [200, 255]]])
    request.inputs[0].contents.uint_contents[3] = 256  # a uint32 in the message, out of UINT8's range
    with pytest.raises(ProtocolError, match="outside UINT8's range"):
        decode_infer_request(request).inputs[0].to_array()


def test_bytes_elements_are_raw_files_whether_raw_or_typed():
    files = [b"\x89PNG first", b"", b"third file"]
    packed = b"".join(struct.pack("<I", len(item)) + item for item in files)
    raw = decode_infer_request(request_with("images", "BYTES", [3], raw_input_contents=[packed]))
    typed = request_with("images", "BYTES", [3])
    typed.inputs[0].contents.bytes_contents.extend(files)
    for decoded in (raw, decode_infer_request(typed)):
        assert decoded.inputs[0].binary_data is not None  # raw bytes, not base64 as in JSON
        assert decoded.inputs[0].to_elements() == files


def test_raw_contents_must_match_the_shape():
    request = request_with("pixels", "UINT8", [1, 28, 28], raw_input_contents=[b"\x00" * 100])
    with pytest.raises(ProtocolError, match=r"input 'pixels': binary_data_size is 100 bytes, but shape \[1, 28, 28\]"):
        decode_infer_request(request).inputs[0].to_array()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: pb.ModelInferRequest(model_name="mnist"), "no inputs"),
        (lambda: request_with("pixels", "UINT8", [1, -28, 28]), "negative dimension"),
        (lambda: request_with("pixels", "UINT7", [1], raw_input_contents=[b"x"]), "unknown or unsupported datatype"),
        (lambda: request_with("pixels", "FP16", [1]), "FP16 data has no typed contents"),
        (lambda: request_with("pixels", "UINT8", [1], raw_input_contents=[b"x", b"y"]), "2 entries for 1 inputs"),
    ],
)
def test_malformed_requests_say_what_is_wrong(build, message):
    with pytest.raises(ProtocolError, match=message):
        decode_infer_request(build())


def test_raw_and_typed_contents_together_are_refused():
    request = request_with("pixels", "UINT8", [1], raw_input_contents=[b"x"])
    request.inputs[0].contents.uint_contents.append(1)
    with pytest.raises(ProtocolError, match="has contents, but raw_input_contents is used"):
        decode_infer_request(request)


def test_an_input_sent_twice_and_shared_memory_are_refused_as_over_rest():
    twice = request_with("pixels", "UINT8", [0], raw_input_contents=[b"", b""])
    twice.inputs.add(name="pixels", datatype="UINT8", shape=[0])
    with pytest.raises(ProtocolError, match="input 'pixels' is sent twice"):
        decode_infer_request(twice)
    shared = request_with("pixels", "UINT8", [1, 28, 28])
    shared.inputs[0].parameters["shared_memory_region"].string_param = "region0"
    with pytest.raises(ProtocolError, match="shared memory is not supported"):
        decode_infer_request(shared)


def test_requested_outputs_keep_their_order_and_duplicates_are_refused():
    request = request_with("pixels", "UINT8", [0], raw_input_contents=[b""])
    request.outputs.add(name="digit")
    request.outputs.add(name="probabilities")
    assert [output.name for output in decode_infer_request(request).outputs] == ["digit", "probabilities"]
    request.outputs.add(name="digit")
    with pytest.raises(ProtocolError, match="output 'digit' is requested twice"):
        decode_infer_request(request)


def test_outputs_go_back_as_raw_little_endian_contents_in_order():
    probabilities = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    outputs = [
        OutputTensor("digit", "INT64", np.array([3, 258]), binary=False),
        OutputTensor("probabilities", "FP32", probabilities, binary=False),
        OutputTensor("is_digit", "BOOL", np.array([True, False]), binary=False),
    ]
    response = encode_infer_response(model_name="mnist", model_version="abc", request_id="7", outputs=outputs)
    assert (response.model_name, response.model_version, response.id) == ("mnist", "abc", "7")
    assert [(tensor.name, tensor.datatype, list(tensor.shape)) for tensor in response.outputs] == [
        ("digit", "INT64", [2]),
        ("probabilities", "FP32", [2, 2]),
        ("is_digit", "BOOL", [2]),
    ]
    digit, probs, flags = response.raw_output_contents
    assert digit == struct.pack("<qq", 3, 258)
    assert probs == struct.pack("<4f", 0.25, 0.75, 1.0, 0.0)
    assert flags == b"\x01\x00"


def test_model_metadata_carries_every_tensor():
    metadata = ModelMetadata(
        name="mnist",
        versions=["abc"],
        platform="pytorch",
        inputs=[MetadataTensor(name="pixels", datatype="UINT8", shape=[-1, 28, 28])],
        outputs=[MetadataTensor(name="digit", datatype="INT64", shape=[-1])],
    )
    message = model_metadata_message(metadata)
    assert (message.name, list(message.versions), message.platform) == ("mnist", ["abc"], "pytorch")
    assert [(t.name, t.datatype, list(t.shape)) for t in message.inputs] == [("pixels", "UINT8", [-1, 28, 28])]
    assert [(t.name, t.datatype, list(t.shape)) for t in message.outputs] == [("digit", "INT64", [-1])]


def _fields(message, prefix: str = "") -> dict[str, tuple[int, int]]:
    """Every field of a message and its nested messages (map entries aside): number and wire type, by path."""
    found = {f"{prefix}{field.name}": (field.number, field.type) for field in message.fields}
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            found.update(_fields(nested, f"{prefix}{nested.name}."))
    return found


def _values(enum) -> dict[str, int]:
    return {value.name: value.number for value in enum.values}


def test_the_messages_are_wire_compatible_with_tritons():
    """Ours are a subset of Triton's grpc_service.proto and model_config.proto, the ones tritonclient.grpc speaks:
    the same message names and, for each of our fields, the same number and type; each enum value the same number.
    Both load in one process (ours have their own pool)."""
    from tritonclient.grpc import model_config_pb2
    from tritonclient.grpc import service_pb2 as triton

    def their_message(name: str):
        if name in triton.DESCRIPTOR.message_types_by_name:
            return triton.DESCRIPTOR.message_types_by_name[name]
        return model_config_pb2.DESCRIPTOR.message_types_by_name[name]

    for name, message in pb.DESCRIPTOR.message_types_by_name.items():
        theirs = _fields(their_message(name))
        for path, number_and_type in _fields(message).items():
            assert theirs.get(path) == number_and_type, f"{name}.{path}"
    assert _values(pb.DataType.DESCRIPTOR) == _values(model_config_pb2.DataType.DESCRIPTOR)
    ours_kind, their_kind = pb.ModelInstanceGroup.Kind.DESCRIPTOR, model_config_pb2.ModelInstanceGroup.Kind.DESCRIPTOR
    assert _values(ours_kind) == _values(their_kind)
    ours, service = (
        pb.DESCRIPTOR.services_by_name["GRPCInferenceService"],
        triton.DESCRIPTOR.services_by_name["GRPCInferenceService"],
    )
    for method in ours.methods:
        theirs = service.methods_by_name[method.name]
        assert (theirs.input_type.name, theirs.output_type.name) == (method.input_type.name, method.output_type.name)
