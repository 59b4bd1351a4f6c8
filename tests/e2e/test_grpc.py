"""The served container over gRPC (the image's MNIST_SERVE_GRPC_PORT), as `tritonclient.grpc` sees it: healthy,
the model's metadata, and real MNIST test digits as PNG files (the `images` input) all read right; and gRPC's
health service SERVING, as a Kubernetes gRPC probe asks it."""

from __future__ import annotations

import grpc
import numpy as np
import tritonclient.grpc as triton

from app.oip import health_pb2 as health
from tests.helpers import Digit


def test_grpc_answers_with_the_shipped_model(grpc_address: str, digits: list[Digit]) -> None:
    with triton.InferenceServerClient(grpc_address) as client:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
        assert [tensor.name for tensor in client.get_model_metadata("mnist").inputs] == ["pixels", "images"]
        files = np.array([digit.png for digit in digits], dtype=np.object_)
        images = triton.InferInput("images", [len(files)], "BYTES").set_data_from_numpy(files)
        predicted = client.infer("mnist", [images]).as_numpy("digit").tolist()
    assert predicted == [digit.label for digit in digits]


def test_the_health_service_says_serving(grpc_address: str) -> None:
    with grpc.insecure_channel(grpc_address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health.HealthCheckRequest.SerializeToString,
            response_deserializer=health.HealthCheckResponse.FromString,
        )
        assert check(health.HealthCheckRequest(), timeout=30).status == health.HealthCheckResponse.SERVING
