"""Images/s through the Open Inference Protocol (binary `pixels`, batches of 64) vs /predict/batch (64 PNGs), in
one run against one server.

    python -m benchmarks.oip_throughput                      # about 2 minutes
    python -m benchmarks.oip_throughput --duration 5 --rounds 5 --concurrency 4

One real `uvicorn app.main:app` (default batching settings, one torch thread, one decode thread) pinned to core 0
(`taskset -c 0`); `hey` drives each load from core 1 (`taskset -c 1`), the loads visited in interleaved rounds so
that a shared machine's noise hits each alike; figures are medians over rounds. Every request carries the same 64
MNIST test digits (the first 64 of the test set when the MNIST files are found, else a drawn 7 repeated):

- OIP binary pixels: what `tritonclient.http` sends for a UINT8 [64, 28, 28] tensor (binary tensor data, every
  output asked for in binary): no image decoding at all, the digits are only normalised;
- OIP binary images: the same digits as 64 PNG files in a BYTES [64] tensor (decoded and preprocessed like
  /predict);
- OIP JSON pixels: the UINT8 tensor as a JSON list (what a client without the binary extension sends);
- OIP gRPC raw pixels: the UINT8 tensor in `raw_input_contents` over gRPC (what `tritonclient.grpc` sends), on
  the same server's MNIST_SERVE_GRPC_PORT, driven by `benchmarks.grpc_load` (grpc.aio, the same number of calls
  in flight as hey's clients, pinned to the same core);
- /predict/batch: the 64 PNG files as multipart `files` fields, the native API's batch form (the baseline);
- /predict/batch JSON: the 64 PNG files as base64 strings.

Prints a markdown table: requests/s, images/s, latency, and images/s relative to /predict/batch (multipart).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import torch
from PIL import Image

from app.oip import grpc_predict_v2_pb2 as pb
from app.oip.codec import HEADER_LENGTH
from app.oip.grpc_server import SERVICE_NAME
from app.testing import free_port, running_server
from benchmarks.grpc_load import run_grpc_load
from benchmarks.serve_throughput import SERVE, server_env
from benchmarks.serving import REPO, UVICORN_QUIET, add_server_flags, encode, hey, mnist_test_digits, pinned
from mnist_model import ModelMetadata, Net, save_checkpoint

log = logging.getLogger("benchmarks.oip_throughput")
BATCH = 64
BASELINE = "/predict/batch multipart PNG"


GRPC_INFER = f"/{SERVICE_NAME}/ModelInfer"


@dataclass(frozen=True)
class Load:
    """One kind of request: where it goes (an HTTP path, or a gRPC method), its body (a file for hey or
    `grpc_load`) and its headers."""

    name: str
    path: str
    body: Path
    content_type: str
    headers: tuple[str, ...] = ()

    @property
    def grpc(self) -> bool:
        return self.path == GRPC_INFER


def oip_binary(name: str, datatype: str, shape: list[int], data: bytes) -> tuple[bytes, str]:
    """(body, Inference-Header-Content-Length) for one binary input, every output asked for in binary, as
    `tritonclient.http` sends it when no outputs are named."""
    header = json.dumps(
        {
            "inputs": [
                {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(data)}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + data, str(len(header))


def multipart(field: str, files: list[bytes], boundary: str = "oip-benchmark-boundary") -> tuple[bytes, str]:
    """(body, content type) of a multipart form with one `field` file per image."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def loads(workdir: Path, digits: np.ndarray) -> list[Load]:
    """The request bodies, written to `workdir` for hey."""
    files = [encode(Image.fromarray(image), "PNG") for image in digits]
    pixels, pixels_length = oip_binary("pixels", "UINT8", list(digits.shape), digits.tobytes())
    framed = b"".join(struct.pack("<I", len(data)) + data for data in files)
    images, images_length = oip_binary("images", "BYTES", [len(files)], framed)
    pixels_json = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "UINT8",
                    "shape": list(digits.shape),
                    "data": digits.reshape(-1).tolist(),
                }
            ]
        }
    ).encode()
    grpc_pixels = pb.ModelInferRequest(model_name="mnist", raw_input_contents=[digits.tobytes()])
    grpc_pixels.inputs.add(name="pixels", datatype="UINT8", shape=list(digits.shape))
    form, form_type = multipart("files", files)
    batch_json = json.dumps({"images": [base64.b64encode(data).decode() for data in files]}).encode()
    infer = "/v2/models/mnist/infer"
    bodies = {
        "OIP binary pixels": (infer, pixels, "application/octet-stream", (f"{HEADER_LENGTH}: {pixels_length}",)),
        "OIP binary images (PNG)": (infer, images, "application/octet-stream", (f"{HEADER_LENGTH}: {images_length}",)),
        "OIP JSON pixels": (infer, pixels_json, "application/json", ()),
        "OIP gRPC raw pixels": (GRPC_INFER, grpc_pixels.SerializeToString(), "application/grpc", ()),
        BASELINE: ("/predict/batch", form, form_type, ()),
        "/predict/batch JSON base64 PNG": ("/predict/batch", batch_json, "application/json", ()),
    }
    result = []
    for index, (name, (path, body, content_type, headers)) in enumerate(bodies.items()):
        file = workdir / f"body-{index}"
        file.write_bytes(body)
        result.append(Load(name, path, file, content_type, headers))
    return result


def check(url: str, grpc_address: str, load: Load) -> None:
    """One request of the load must be answered 200 with one answer per image, or the figures mean nothing."""
    if load.grpc:
        with grpc.insecure_channel(grpc_address) as channel:
            call: grpc.UnaryUnaryMultiCallable[bytes, pb.ModelInferResponse] = channel.unary_unary(
                load.path, response_deserializer=pb.ModelInferResponse.FromString
            )
            reply = call(load.body.read_bytes(), timeout=60)
        if [list(output.shape) for output in reply.outputs if output.name == "digit"] != [[BATCH]]:
            raise RuntimeError(f"{load.name}: no {BATCH} answers in {reply.outputs}")
        return
    headers = {"Content-Type": load.content_type} | dict(header.split(": ", 1) for header in load.headers)
    response = httpx.post(f"{url}{load.path}", content=load.body.read_bytes(), headers=headers, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{load.name}: {response.status_code} {response.text[:300]}")
    if load.path == "/predict/batch":
        answered = len(response.json()["predictions"])
    else:
        length = response.headers.get(HEADER_LENGTH)
        header = json.loads(response.content[: int(length)] if length else response.content)
        answered = next(output["shape"][0] for output in header["outputs"] if output["name"] == "digit")
    if answered != BATCH:
        raise RuntimeError(f"{load.name}: {answered} answers for {BATCH} images")


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Start the server, check every load, then measure `rounds` interleaved rounds of each; medians."""
    with tempfile.TemporaryDirectory(prefix="oip-bench-") as folder:
        workdir = Path(folder)
        checkpoint = args.checkpoint
        if not checkpoint.is_file():
            log.warning("%s is missing; timing an untrained checkpoint (same network, same cost)", checkpoint)
            checkpoint = workdir / "untrained.safetensors"
            save_checkpoint(checkpoint, Net(), ModelMetadata(command="oip_throughput benchmark"))
        requests = loads(workdir, mnist_test_digits(BATCH))
        grpc_address = f"127.0.0.1:{free_port()}"
        env = server_env(SERVE, checkpoint, args.precision) | {"MNIST_SERVE_GRPC_PORT": grpc_address.split(":")[1]}
        prefix, client = pinned(args.server_cpu, realtime=False), pinned(args.client_cpu, realtime=False)
        with running_server(env=env, server_args=UVICORN_QUIET, command_prefix=prefix, cwd=REPO) as server:
            for load in requests:
                for _ in range(5):  # also the warm-up: first requests pay for lazy imports and allocations
                    check(server.url, grpc_address, load)
            rounds: dict[str, list[dict[str, float]]] = {load.name: [] for load in requests}
            for round_index in range(args.rounds):
                shift = round_index % len(requests)
                for load in requests[shift:] + requests[:shift]:
                    if load.grpc:
                        report = run_grpc_load(
                            grpc_address, load.path, load.body, args.concurrency, args.duration, client
                        )
                    else:
                        report = hey(
                            f"{server.url}{load.path}",
                            load.body,
                            load.content_type,
                            args.concurrency,
                            args.duration,
                            client,
                            headers=load.headers,
                        )
                    rounds[load.name].append(report)
                    log.info("%s: %.1f req/s", load.name, report["rps"])
    return {
        name: {key: statistics.median(r[key] for r in results) for key in ("rps", "p50", "p99")}
        | {"non_200": sum(r["non_200"] for r in results)}
        for name, results in rounds.items()
    }


def table(results: dict[str, dict[str, float]]) -> str:
    baseline = results[BASELINE]["rps"]
    lines = [
        f"| load ({BATCH} images per request) | req/s | images/s | p50 ms | p99 ms "
        "| images/s vs /predict/batch | non-200 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        lines.append(
            f"| {name} | {result['rps']:.1f} | {result['rps'] * BATCH:,.0f} | {result['p50']:.1f} "
            f"| {result['p99']:.1f} | {result['rps'] / baseline:.2f}× | {result['non_200']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=3.0, metavar="S", help="seconds per round of a load (default: 3)"
    )
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaved rounds per load (default: 3)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="C",
        help="concurrent clients, each sending 64 images (default: 4)",
    )
    add_server_flags(parser, "of the server (default: auto, the service's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if shutil.which("hey") is None or shutil.which("taskset") is None:
        parser.error("needs `hey` and `taskset` on PATH (Debian: apt-get install hey util-linux)")
    start = time.monotonic()
    results = run(args)
    log.info("done in %.0f s on %d CPUs, torch %s", time.monotonic() - start, os.cpu_count() or 0, torch.__version__)
    sys.stdout.write(
        f"uvicorn on CPU {args.server_cpu}, hey (gRPC: grpc_load) on CPU {args.client_cpu} with {args.concurrency} "
        f"clients, precision "
        f"{args.precision}, median of {args.rounds} interleaved rounds × {args.duration:g} s per cell\n\n"
        f"{table(results)}\n"
    )


if __name__ == "__main__":
    main()
