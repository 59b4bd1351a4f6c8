"""Triton's model configuration extension, in-process: `GET /v2/models/mnist/config` (and its version path) and gRPC
`ModelConfig` describe the batch limit, both inputs as optional, the outputs the model has, the dynamic batcher's
settings and the device, in Triton's field names and datatype spellings, the same over both protocols; an unknown
model or version is a 404 / NOT_FOUND."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from app.config import Settings
from app.oip import grpc_predict_v2_pb2 as pb
from app.oip.model_config import config_type, instance_group
from app.testing import free_port
from tests.oip.test_grpc_server import serve

EXPECTED = {
    "name": "mnist",
    "platform": "pytorch",
    "max_batch_size": 8,
    "input": [
        {"name": "pixels", "data_type": "TYPE_UINT8", "dims": [28, 28], "optional": True},
        {"name": "images", "data_type": "TYPE_STRING", "dims": [1], "optional": True},
    ],
    "output": [  # the untrained checkpoint has no digit gate, so no `is_digit`
        {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]},
        {"name": "digit", "data_type": "TYPE_INT64", "dims": []},
    ],
    "dynamic_batching": {"preferred_batch_size": [16], "max_queue_delay_microseconds": 5000},
    "instance_group": [{"name": "mnist_0", "kind": "KIND_CPU", "count": 1, "gpus": []}],
}
"""What the settings below make the configuration say."""


@pytest.fixture
def settings(untrained_checkpoint) -> Settings:
    return Settings(
        model_path=untrained_checkpoint,
        device="cpu",
        max_batch_images=8,
        max_batch_size=16,
        max_batch_wait_ms=5,
        grpc_port=free_port(),
    )


async def test_http_and_grpc_describe_the_served_model_alike(settings):
    async with serve(settings) as served:
        response = await served.http.get("/v2/models/mnist/config")
        assert response.status_code == 200
        assert response.json() == EXPECTED
        version = (await served.http.get("/model")).json()["version"]
        assert (await served.http.get(f"/v2/models/mnist/versions/{version}/config")).json() == EXPECTED
        reply = await served.call("ModelConfig", pb.ModelConfigRequest(name="mnist", version=version))
    over_grpc = json_format.MessageToDict(
        reply.config, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    over_grpc["dynamic_batching"]["max_queue_delay_microseconds"] = int(  # protobuf's JSON writes uint64 as text
        over_grpc["dynamic_batching"]["max_queue_delay_microseconds"]
    )
    for tensor in over_grpc["input"] + over_grpc["output"]:
        tensor["dims"] = [int(dim) for dim in tensor["dims"]]
    assert over_grpc == EXPECTED


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/digits/config", "unknown model 'digits'"),
        ("/v2/models/mnist/versions/0/config", "model 'mnist' has no version '0'"),
    ],
)
async def test_an_unknown_model_or_version_is_not_found(settings, path, message):
    async with serve(settings) as served:
        response = await served.http.get(path)
        assert response.status_code == 404 and message in response.json()["error"]
        name, _, version = path.removeprefix("/v2/models/").removesuffix("/config").partition("/versions/")
        failure = await served.call.error("ModelConfig", pb.ModelConfigRequest(name=name, version=version))
    assert failure.code() == grpc.StatusCode.NOT_FOUND and message in failure.details()


@pytest.mark.parametrize(
    ("datatype", "spelled"),
    [("UINT8", "TYPE_UINT8"), ("FP32", "TYPE_FP32"), ("BOOL", "TYPE_BOOL"), ("BYTES", "TYPE_STRING")],
)
def test_datatypes_take_tritons_config_spelling(datatype, spelled):
    assert config_type(datatype) == spelled


@pytest.mark.parametrize(
    ("device", "kind", "gpus"),
    [("cpu", "KIND_CPU", []), ("cuda:0", "KIND_GPU", [0]), ("cuda:3", "KIND_GPU", [3]), ("cuda", "KIND_GPU", [0])],
)
def test_the_instance_is_where_the_model_runs(device, kind, gpus):
    group = instance_group(device)
    assert (group.kind, group.gpus, group.count) == (kind, gpus, 1)
