"""The Open Inference Protocol v2 over gRPC (KServe's `inference.GRPCInferenceService`), on MNIST_SERVE_GRPC_PORT.

What `tritonclient.grpc`, KServe's gRPC client and Triton's load tools speak: ServerLive, ServerReady, ModelReady,
ServerMetadata, ModelMetadata, ModelInfer and Triton's ModelConfig (its model configuration extension), answered
by the same `Service` (preprocessing, dynamic batcher, limits) as /predict and /v2 over HTTP, through the same
translation (`app.oip.mnist`); only the framing differs (`app.oip.grpc_codec`). Errors are gRPC status codes
with the REST message: INVALID_ARGUMENT (400), NOT_FOUND (404), RESOURCE_EXHAUSTED (413, and a message over
MNIST_SERVE_MAX_BODY_BYTES, which gRPC refuses itself), UNAVAILABLE (503: not ready, queue full; the `retry-after`
trailer says when to retry), DEADLINE_EXCEEDED (504); an unexpected exception is logged and answered INTERNAL, and
the server lives on. Beside it, gRPC's standard health service (`grpc.health.v1.Health`, its Check call) answers
load balancers and Kubernetes' gRPC probes.

Why a thread pool and not grpc.aio: grpc.aio would run on the HTTP server's event loop, which is uvloop, a
combination gRPC does not test (grpc/grpc#22753). Here each call waits in a thread for the answer computed on the
service's own event loop (`run_coroutine_threadsafe`), so the two servers stay independent; the threads only
wait, so they cost no CPU. The server starts in the app's lifespan, after a gunicorn worker is
forked (gRPC must not be started before a fork), and every worker binds the port (SO_REUSEPORT, gRPC's default
on Linux), so the kernel spreads connections over them as it does for HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from app import NAME, __version__
from app.errors import ServiceError
from app.metrics import Metrics
from app.oip import grpc_predict_v2_pb2 as pb
from app.oip import health_pb2 as health
from app.oip import mnist
from app.oip.classification import CLASSIFICATION_EXTENSION
from app.oip.errors import ProtocolError
from app.oip.grpc_codec import (
    decode_infer_request,
    encode_infer_response,
    model_config_message,
    model_metadata_message,
)
from app.oip.model_config import CONFIG_EXTENSION, model_config
from app.service import Service

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
"""gRPC's standard health checking service: its Check answers SERVING once the model is warmed up."""
CALL_THREADS = 64
"""Calls in flight at once per process (each waits in a thread); more wait for a thread, none is refused."""
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""The gRPC status of each HTTP status the protocol's errors carry."""
CLIENT_GONE = 499
"""The status /metrics counts for a call its client cancelled (or let time out) before the answer: nginx's
"client closed request", as HTTP has no code of its own for it."""


class InferenceServicer:
    """The inference service's seven calls, each a thin translation of its REST route in `app.routes.oip` onto the
    same `Service`, and the health service's Check."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop) -> None:
        self.service, self.loop = service, loop

    def server_live(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._ready())

    def model_ready(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        """Not ready, rather than NOT_FOUND, for a model or version not served: as Triton answers, and what
        `tritonclient.grpc.is_model_ready` reads as False (over HTTP that is the 404's job)."""
        try:
            mnist.check_model(request.name, request.version or None, self.service.model.version)
        except ProtocolError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self._ready())

    def server_metadata(
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """The binary tensor data extension is HTTP's (gRPC sends raw contents anyway): not listed here."""
        return pb.ServerMetadataResponse(
            name=NAME, version=__version__, extensions=[CLASSIFICATION_EXTENSION, CONFIG_EXTENSION]
        )

    def model_metadata(
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        mnist.check_model(request.name, request.version or None, self.service.model.version)
        return model_metadata_message(mnist.metadata(self.service))

    def model_config(self, request: pb.ModelConfigRequest, context: grpc.ServicerContext) -> pb.ModelConfigResponse:
        """Triton's model configuration extension, as `GET /v2/models/{name}/config`."""
        mnist.check_model(request.name, request.version or None, self.service.model.version)
        return model_config_message(model_config(self.service))

    def model_infer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        mnist.check_model(request.model_name, request.model_version or None, self.service.model.version)
        decoded = decode_infer_request(request)
        outputs = self._on_loop(mnist.infer(self.service, decoded), context)
        return encode_infer_response(
            model_name=mnist.MODEL_NAME,
            model_version=self.service.model.version,
            request_id=decoded.id,
            outputs=outputs,
        )

    def health_check(
        self, request: health.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health.HealthCheckResponse:
        """gRPC's health checking protocol, as Kubernetes' gRPC probes and load balancers ask it: the server (the
        empty name) or the inference service, SERVING once the model is warmed up (as ServerReady and /readyz);
        another name is NOT_FOUND, as the protocol says."""
        if request.service not in ("", SERVICE_NAME):
            raise ProtocolError(f"unknown service {request.service!r}: ask for '' or {SERVICE_NAME!r}", 404)
        status = health.HealthCheckResponse.SERVING if self._ready() else health.HealthCheckResponse.NOT_SERVING
        return health.HealthCheckResponse(status=status)

    def _ready(self) -> bool:
        try:
            self.service.check_ready()
        except ServiceError:
            return False
        return True

    def _on_loop(self, work: Coroutine[Any, Any, Any], context: grpc.ServicerContext) -> Any:
        """Run `work` on the service's event loop and wait for it. A call that ends first (the client cancelled,
        or its deadline passed) cancels `work`, whose images the batcher then skips; `CancelledError` here."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(work, self.loop)

        def cancel() -> None:
            future.cancel()

        context.add_callback(cancel)
        return future.result()


Method = Callable[[Any, grpc.ServicerContext], Message]


def _answered(
    service: str, name: str, method: Method, message: type[Message], metrics: Metrics
) -> Callable[..., Message]:
    """`method` taking the request's bytes (parsed here as `message`: bytes that are not one are INVALID_ARGUMENT,
    not gRPC's own INTERNAL), with its errors as gRPC statuses (`STATUS_CODES`; an unexpected one logged and
    INTERNAL), each call counted and timed in /metrics as over HTTP: route `/<service>/<name>`, method GRPC, the
    status its HTTP twin would have answered."""
    route = f"/{service}/{name}"

    def answer(data: bytes, context: grpc.ServicerContext) -> Message:
        start, status = time.perf_counter(), 500
        try:
            reply = method(_parse(message, data), context)
            status = 200
            return reply
        except (ProtocolError, ServiceError) as error:
            status = error.status_code
            if error.headers.get("Retry-After"):
                context.set_trailing_metadata((("retry-after", error.headers["Retry-After"]),))
            context.abort(STATUS_CODES.get(status, grpc.StatusCode.INTERNAL), str(error))
        except CancelledError:  # the client cancelled or its deadline passed: its images are skipped
            status = CLIENT_GONE
            context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled before the model answered")
        except Exception:
            log.exception("unexpected error in gRPC call %s", name)
            context.abort(grpc.StatusCode.INTERNAL, "internal error: the server logged it; the request can be retried")
        finally:
            metrics.observe_request(route, "GRPC", status, time.perf_counter() - start)
        raise AssertionError("context.abort always raises")  # pragma: no cover

    return answer


def _parse(message: type[Message], data: bytes) -> Message:
    try:
        return message.FromString(data)
    except DecodeError:
        raise ProtocolError(f"the request is not a valid {message.DESCRIPTOR.full_name} message") from None


def _handlers(servicer: InferenceServicer, metrics: Metrics) -> list[grpc.GenericRpcHandler]:
    """The services' methods by name, each with the message it takes and its answer's serialiser."""
    methods: dict[str, tuple[Method, type[Message]]] = {
        "ServerLive": (servicer.server_live, pb.ServerLiveRequest),
        "ServerReady": (servicer.server_ready, pb.ServerReadyRequest),
        "ModelReady": (servicer.model_ready, pb.ModelReadyRequest),
        "ServerMetadata": (servicer.server_metadata, pb.ServerMetadataRequest),
        "ModelMetadata": (servicer.model_metadata, pb.ModelMetadataRequest),
        "ModelInfer": (servicer.model_infer, pb.ModelInferRequest),
        "ModelConfig": (servicer.model_config, pb.ModelConfigRequest),
    }
    checks: dict[str, tuple[Method, type[Message]]] = {"Check": (servicer.health_check, health.HealthCheckRequest)}
    services = {SERVICE_NAME: methods, HEALTH_SERVICE: checks}
    return [
        grpc.method_handlers_generic_handler(
            service,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    _answered(service, name, method, message, metrics), None, _serialize
                )
                for name, (method, message) in service_methods.items()
            },
        )
        for service, service_methods in services.items()
    ]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


@dataclass
class GrpcServer:
    """A running gRPC server and its call threads."""

    server: grpc.Server
    threads: ThreadPoolExecutor

    @classmethod
    def start(
        cls, service: Service, loop: asyncio.AbstractEventLoop, metrics: Metrics, *, port: int, max_message_bytes: int
    ) -> GrpcServer:
        """Serve on all interfaces at `port`; raises RuntimeError if it cannot bind it."""
        threads = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="mnist-grpc")
        server = grpc.server(
            threads,
            handlers=_handlers(InferenceServicer(service, loop), metrics),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 1),
            ],
        )
        try:
            bound = server.add_insecure_port(f"[::]:{port}")  # older gRPC returns 0 where newer ones raise
        except RuntimeError:
            bound = 0
        if bound != port:
            server.stop(None)
            threads.shutdown(wait=False)
            raise RuntimeError(f"cannot serve gRPC on port {port} (MNIST_SERVE_GRPC_PORT): in use or not allowed")
        server.start()
        log.info("Open Inference Protocol over gRPC on port %d", port)
        return cls(server, threads)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give those in flight `grace_s` to finish (the event loop stays free to finish them),
        then let the call threads go (gRPC does not own them)."""
        await asyncio.to_thread(self.server.stop(grace_s).wait)
        self.threads.shutdown(wait=False)
