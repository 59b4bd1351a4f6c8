"""The Open Inference Protocol over gRPC, in-process (the app's lifespan on the test's event loop, a real gRPC
channel on loopback): health and metadata as over HTTP, the same answers as /v2 over HTTP for both inputs (raw
and typed contents), every error as its gRPC status, a full queue as UNAVAILABLE with a
`retry-after` trailer, calls made while warming up answered once warm, a port in use stopping start-up, and the
port closed after shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from app import NAME, __version__
from app.config import Settings
from app.main import create_app
from app.oip import grpc_predict_v2_pb2 as pb
from app.oip import health_pb2 as health
from app.testing import StubModel, free_port, serve_in_process
from tests.helpers import digit_png
from tests.test_routes_oip import INFER, mnist_format, pixels_json, png

REPLIES = {
    "ServerLive": pb.ServerLiveResponse,
    "ServerReady": pb.ServerReadyResponse,
    "ModelReady": pb.ModelReadyResponse,
    "ServerMetadata": pb.ServerMetadataResponse,
    "ModelMetadata": pb.ModelMetadataResponse,
    "ModelInfer": pb.ModelInferResponse,
    "ModelConfig": pb.ModelConfigResponse,
}
SERVING, NOT_SERVING = health.HealthCheckResponse.SERVING, health.HealthCheckResponse.NOT_SERVING


@dataclass
class Channel:
    """Calls to the server's methods over a real channel, each made in a thread: the server answers on the
    test's event loop, which must stay free meanwhile."""

    channel: grpc.Channel

    async def __call__(self, method: str, request: Message) -> Message:
        call = self.channel.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=REPLIES[method].FromString,
        )
        return await asyncio.to_thread(call, request, timeout=30)

    async def health(self, service: str = "", method: str = "Check") -> health.HealthCheckResponse:
        """gRPC's health service, as a probe asks it."""
        call = self.channel.unary_unary(
            f"/grpc.health.v1.Health/{method}",
            request_serializer=health.HealthCheckRequest.SerializeToString,
            response_deserializer=health.HealthCheckResponse.FromString,
        )
        return await asyncio.to_thread(call, health.HealthCheckRequest(service=service), timeout=30)

    async def error(self, method: str, request: Message) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            await self(method, request)
        return caught.value


@pytest.fixture
def settings(untrained_checkpoint) -> Settings:
    return Settings(
        model_path=untrained_checkpoint, device="cpu", max_batch_images=8, max_body_bytes=64_000, grpc_port=free_port()
    )


@dataclass
class Served:
    """An app serving in-process: its HTTP client and a gRPC channel to its port."""

    app: FastAPI
    http: httpx.AsyncClient
    call: Channel

    def queue_depth(self) -> float:
        return self.app.state.metrics.registry.get_sample_value("mnist_serve_queue_depth")


@asynccontextmanager
async def serve(settings: Settings, *, wait_ready: bool = True, **kwargs) -> AsyncIterator[Served]:
    app = create_app(settings, **kwargs)
    async with serve_in_process(app, wait_ready=wait_ready) as http:
        with grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            yield Served(app, http, Channel(channel))


@pytest.fixture
async def served(settings):
    async with serve(settings) as running:
        yield running


def infer_request(
    name: str, datatype: str, shape: list[int], raw: bytes | None = None, **fields
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mnist", **fields)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


def raw_output(reply: pb.ModelInferResponse, name: str, dtype: str) -> np.ndarray:
    index = [tensor.name for tensor in reply.outputs].index(name)
    return np.frombuffer(reply.raw_output_contents[index], dtype=dtype).reshape(list(reply.outputs[index].shape))


async def test_health_and_metadata_say_what_http_says(served):
    http, call = served.http, served.call
    assert (await call("ServerLive", pb.ServerLiveRequest())).live
    assert (await call("ServerReady", pb.ServerReadyRequest())).ready
    assert (await call("ModelReady", pb.ModelReadyRequest(name="mnist"))).ready
    server = await call("ServerMetadata", pb.ServerMetadataRequest())
    assert (server.name, server.version, list(server.extensions)) == (
        NAME,
        __version__,
        ["classification", "model_configuration"],
    )
    expected = (await http.get("/v2/models/mnist")).json()
    metadata = await call("ModelMetadata", pb.ModelMetadataRequest(name="mnist", version=expected["versions"][0]))
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("mnist", expected["versions"], "pytorch")
    for side in ("inputs", "outputs"):
        got = [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in getattr(metadata, side)]
        assert got == expected[side]


async def test_pixels_raw_or_typed_get_the_answers_http_gives(served):
    http, call = served.http, served.call
    pixels = np.stack([mnist_format(seed) for seed in range(3)])
    over_http = (await http.post(INFER, **pixels_json(pixels))).json()
    expected = {output["name"]: np.array(output["data"]) for output in over_http["outputs"]}
    raw = await call("ModelInfer", infer_request("pixels", "UINT8", [3, 28, 28], pixels.tobytes(), id="r1"))
    typed_request = infer_request("pixels", "UINT8", [3, 28, 28])
    typed_request.inputs[0].contents.uint_contents.extend(pixels.reshape(-1).tolist())
    typed = await call("ModelInfer", typed_request)
    assert (raw.model_name, raw.model_version, raw.id) == ("mnist", over_http["model_version"], "r1")
    for reply in (raw, typed):
        np.testing.assert_allclose(raw_output(reply, "probabilities", "<f4").reshape(-1), expected["probabilities"])
        np.testing.assert_array_equal(raw_output(reply, "digit", "<i8"), expected["digit"])


async def test_classification_answers_as_over_http(served):
    """`class_count` as `tritonclient.grpc` sends it (an int64 parameter of the requested output): the same
    BYTES [N, K] as over HTTP, in raw output contents (each element a 4-byte length, then its bytes)."""
    http, call = served.http, served.call
    pixels = np.stack([mnist_format(seed) for seed in range(2)])
    asked = {"name": "probabilities", "parameters": {"classification": 2}}
    over_http = (await http.post(INFER, json={**pixels_json(pixels)["json"], "outputs": [asked]})).json()
    request = infer_request("pixels", "UINT8", [2, 28, 28], pixels.tobytes())
    request.outputs.add(name="probabilities").parameters["classification"].int64_param = 2
    reply = await call("ModelInfer", request)
    [output] = reply.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("probabilities", "BYTES", [2, 2])
    raw, elements = reply.raw_output_contents[0], []
    while raw:
        length = int.from_bytes(raw[:4], "little")
        elements.append(raw[4 : 4 + length].decode())
        raw = raw[4 + length :]
    assert elements == over_http["outputs"][0]["data"]


async def test_images_as_typed_bytes_are_files_preprocessed_like_predict(served):
    http, call = served.http, served.call
    files = [digit_png(), png(mnist_format(4))]
    request = infer_request("images", "BYTES", [2])
    request.inputs[0].contents.bytes_contents.extend(files)
    request.outputs.add(name="digit")
    reply = await call("ModelInfer", request)
    assert [tensor.name for tensor in reply.outputs] == ["digit"]
    predicted = []
    for data in files:
        answer = await http.post("/predict", files={"file": ("digit.png", data, "image/png")})
        predicted.append(answer.json()["digit"])
    np.testing.assert_array_equal(raw_output(reply, "digit", "<i8"), predicted)


async def test_errors_are_grpc_status_codes_with_the_rest_message(served):
    call = served.call
    codes = grpc.StatusCode
    unknown = await call.error("ModelInfer", pb.ModelInferRequest(model_name="other"))
    assert unknown.code() == codes.NOT_FOUND and "unknown model 'other'" in unknown.details()
    old = await call.error("ModelMetadata", pb.ModelMetadataRequest(name="mnist", version="0"))
    assert old.code() == codes.NOT_FOUND and "has no version '0'" in old.details()
    for name, version in (("other", ""), ("mnist", "0")):  # not served: not ready, as Triton answers
        assert not (await call("ModelReady", pb.ModelReadyRequest(name=name, version=version))).ready
    shape = await call.error("ModelInfer", infer_request("pixels", "UINT8", [1, 28, 27], bytes(28 * 27)))
    assert shape.code() == codes.INVALID_ARGUMENT and "does not fit [-1, 28, 28]" in shape.details()
    many = await call.error("ModelInfer", infer_request("pixels", "UINT8", [9, 28, 28], bytes(9 * 784)))
    assert many.code() == codes.RESOURCE_EXHAUSTED and "9 images exceed the limit of 8" in many.details()
    broken = infer_request("images", "BYTES", [2])
    broken.inputs[0].contents.bytes_contents.extend([digit_png(), b"not an image"])
    unreadable = await call.error("ModelInfer", broken)
    assert unreadable.code() == codes.INVALID_ARGUMENT and "input 'images' element 1: " in unreadable.details()
    huge = await call.error("ModelInfer", infer_request("pixels", "UINT8", [100, 28, 28], bytes(100 * 784)))
    assert huge.code() == codes.RESOURCE_EXHAUSTED  # over MNIST_SERVE_MAX_BODY_BYTES: refused by gRPC itself
    garbage = served.call.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as unparsable:
        await asyncio.to_thread(garbage, b"\xff\xff\xff not a protobuf message", timeout=10)
    assert unparsable.value.code() == codes.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest message" in unparsable.value.details()
    assert (await call("ServerLive", pb.ServerLiveRequest())).live  # and the server serves on


async def test_calls_are_counted_in_metrics_by_the_status_they_stand_for(served):
    await served.call("ModelInfer", infer_request("pixels", "UINT8", [1, 28, 28], bytes(784)))
    for _ in range(2):
        await served.call.error("ModelInfer", pb.ModelInferRequest(model_name="other"))
    registry = served.app.state.metrics.registry

    def count(status: str) -> float | None:
        labels = {"route": "/inference.GRPCInferenceService/ModelInfer", "method": "GRPC", "status": status}
        return registry.get_sample_value("mnist_serve_requests_total", labels)

    assert (count("200"), count("404")) == (1.0, 2.0)


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()  # never leave the worker blocked


async def test_not_ready_then_ready(gate, settings):
    async with serve(settings, model_factory=lambda _: StubModel(warm_up_gate=gate), wait_ready=False) as running:
        call = running.call
        assert not (await call("ServerReady", pb.ServerReadyRequest())).ready
        assert not (await call("ModelReady", pb.ModelReadyRequest(name="mnist"))).ready
        assert (await call.health()).status == NOT_SERVING
        early = asyncio.create_task(call("ModelInfer", infer_request("pixels", "UINT8", [1, 28, 28], bytes(784))))
        await asyncio.sleep(0.2)
        assert not early.done()  # queued, as over HTTP: answered once the model is warm
        gate.set()
        while not (await call("ServerReady", pb.ServerReadyRequest())).ready:
            await asyncio.sleep(0.01)
        reply = await early
        np.testing.assert_allclose(raw_output(reply, "probabilities", "<f4"), np.full((1, 10), 0.1), rtol=1e-6)
        assert (await call.health()).status == SERVING


async def test_the_health_service_answers_as_probes_ask_it(served):
    """gRPC's health checking protocol: the server ('') and the inference service by name are SERVING once warm;
    another name is NOT_FOUND; Watch (a stream) is not offered: UNIMPLEMENTED, which probes never call."""
    call = served.call
    assert (await call.health()).status == SERVING
    assert (await call.health("inference.GRPCInferenceService")).status == SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        await call.health("digits.Classifier")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "unknown service 'digits.Classifier'" in str(
        unknown.value.details()
    )
    with pytest.raises(grpc.RpcError) as watch:
        await call.health(method="Watch")
    assert watch.value.code() == grpc.StatusCode.UNIMPLEMENTED
    registry = served.app.state.metrics.registry
    labels = {"route": "/grpc.health.v1.Health/Check", "method": "GRPC"}
    assert registry.get_sample_value("mnist_serve_requests_total", {**labels, "status": "200"}) == 2
    assert registry.get_sample_value("mnist_serve_requests_total", {**labels, "status": "404"}) == 1


def test_the_health_messages_have_the_protocols_field_numbers():
    """grpc/health/v1/health.proto: the names, numbers and types probes send and read."""
    request, response = health.HealthCheckRequest.DESCRIPTOR, health.HealthCheckResponse.DESCRIPTOR
    assert (request.full_name, [(f.name, f.number, f.type) for f in request.fields]) == (
        "grpc.health.v1.HealthCheckRequest",
        [("service", 1, FieldDescriptor.TYPE_STRING)],
    )
    assert [(f.name, f.number, f.type) for f in response.fields] == [("status", 1, FieldDescriptor.TYPE_ENUM)]
    statuses = response.enum_types_by_name["ServingStatus"]
    assert {value.name: value.number for value in statuses.values} == {
        "UNKNOWN": 0,
        "SERVING": 1,
        "NOT_SERVING": 2,
        "SERVICE_UNKNOWN": 3,
    }


async def test_concurrent_calls_share_passes_and_a_full_queue_is_unavailable(gate, settings):
    model = StubModel(gate=gate)
    settings = settings.model_copy(update={"max_batch_size": 8, "max_queue_size": 4, "max_batch_images": 4})
    one = infer_request("pixels", "UINT8", [1, 28, 28], bytes(784))
    async with serve(settings, model_factory=lambda _: model) as running:
        call = running.call
        first = asyncio.create_task(call("ModelInfer", one))
        await asyncio.to_thread(model.entered.wait, 5)  # the first pass is held at the gate
        waiting = [asyncio.create_task(call("ModelInfer", one)) for _ in range(4)]
        while running.queue_depth() < 4:
            await asyncio.sleep(0.005)
        full = await call.error("ModelInfer", one)
        assert full.code() == grpc.StatusCode.UNAVAILABLE and "queue is full" in full.details()
        assert dict(full.trailing_metadata())["retry-after"] == "1"
        gate.set()
        replies = await asyncio.gather(first, *waiting)
        assert len(replies) == 5 and max(model.batch_sizes) > 1  # the queued calls went through in one pass


async def test_a_call_whose_deadline_passes_never_reaches_the_model(gate, settings):
    model = StubModel(gate=gate)
    one = infer_request("pixels", "UINT8", [1, 28, 28], bytes(784))
    async with serve(settings.model_copy(update={"max_batch_size": 1}), model_factory=lambda _: model) as running:
        first = asyncio.create_task(running.call("ModelInfer", one))
        await asyncio.to_thread(model.entered.wait, 5)  # the first pass is held at the gate
        late = running.call.channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer", response_deserializer=pb.ModelInferResponse.FromString
        )
        with pytest.raises(grpc.RpcError) as expired:
            await asyncio.to_thread(late, one.SerializeToString(), timeout=0.3)
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        labels = {"route": "/inference.GRPCInferenceService/ModelInfer", "method": "GRPC", "status": "499"}
        registry = running.app.state.metrics.registry
        while registry.get_sample_value("mnist_serve_requests_total", labels) is None:
            await asyncio.sleep(0.01)  # the server saw the call end and cancelled its wait
        gate.set()
        await first
        await running.call("ModelInfer", one)
        assert model.batch_sizes == [1, 1]  # the first and the last: the expired image was skipped


async def test_a_port_in_use_stops_start_up_and_shutdown_closes_the_port(settings):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", settings.grpc_port))
        taken.listen()
        with pytest.raises(RuntimeError, match="MNIST_SERVE_GRPC_PORT"):
            async with serve(settings):
                pass
    async with serve(settings) as running:
        assert (await running.call("ServerLive", pb.ServerLiveRequest())).live
    with grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        closed = await Channel(channel).error("ServerLive", pb.ServerLiveRequest())
    assert closed.code() == grpc.StatusCode.UNAVAILABLE
