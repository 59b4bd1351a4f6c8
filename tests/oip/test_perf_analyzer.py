"""Triton's perf_analyzer, unchanged, against the real server as `make serve` runs it: it reads the model's
metadata and configuration, then sends both inputs over HTTP and gRPC, and every request it sends is answered
200 (counted by the server's /metrics). Skipped without perf_analyzer (`.ci/perf-analyzer-setup.sh` installs it;
CI does). The input data it reads (`benchmarks.perf_analyzer.input_data`) is checked without it."""

from __future__ import annotations

import base64
import io
import struct

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.config import DEFAULT_MODEL_PATH
from benchmarks.perf_analyzer import ENV, find_perf_analyzer, input_data, run_perf_analyzer, write_input_data
from tests.oip.conftest import Digits

ROUTES = {"http": "/v2/models/{model_name}/infer", "grpc": "/inference.GRPCInferenceService/ModelInfer"}


def test_input_data_holds_the_digits_as_pixels_and_as_length_prefixed_pngs():
    digits = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    data = input_data(digits)
    assert [entry["pixels"]["shape"] for entry in data["pixels"]["data"]] == [[28, 28]] * 3
    for digit, pixels, image in zip(digits, data["pixels"]["data"], data["images"]["data"], strict=True):
        assert pixels["pixels"]["content"] == digit.reshape(-1).tolist()
        assert image["images"]["shape"] == [1]
        serialised = base64.b64decode(image["images"]["b64"])
        (length,) = struct.unpack("<I", serialised[:4])
        assert length == len(serialised) - 4  # a BYTES element: its length, then the file
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(serialised[4:]))), digit)


def requests_by_status(url: str, route: str) -> dict[str, float]:
    """The server's count of answered requests on `route`, by status."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "mnist_serve_requests_total" and sample.labels["route"] == route:
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0) + sample.value
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped checkpoint is not trained yet")
@pytest.mark.skipif(
    find_perf_analyzer() is None, reason=f"no perf_analyzer: run .ci/perf-analyzer-setup.sh or set {ENV}"
)
@pytest.mark.parametrize(
    ("protocol", "name", "batch"),
    [("http", "pixels", 8), ("grpc", "pixels", 8), ("http", "images", 4), ("grpc", "images", 4)],
)
def test_perf_analyzer_measures_every_input_over_both_protocols(
    live_service, digits: Digits, tmp_path, protocol, name, batch
):
    binary = find_perf_analyzer()
    assert binary is not None
    data = write_input_data(tmp_path, digits.pixels[:32])[name]
    address = live_service.url.removeprefix("http://") if protocol == "http" else live_service.grpc_address
    before = requests_by_status(live_service.url, ROUTES[protocol])
    measured = run_perf_analyzer(binary, address, protocol, data, batch=batch, concurrency=2, window_requests=30)
    after = requests_by_status(live_service.url, ROUTES[protocol])
    assert measured.infer_per_s > 0 and measured.p50_ms > 0
    answered = after.get("200", 0) - before.get("200", 0)
    assert answered >= measured.requests >= 30  # it timed only answered requests, after its warm-up ones
    assert {status: after[status] - before.get(status, 0) for status in after if status != "200"} == {
        status: 0 for status in after if status != "200"
    }
