"""Triton's own load tool, perf_analyzer, against mnist-serve: one server, HTTP and gRPC, both inputs.

    bash .ci/perf-analyzer-setup.sh                      # once: perf_analyzer into .tools/perf-analyzer
    python -m benchmarks.perf_analyzer                   # about 2 minutes
    python -m benchmarks.perf_analyzer --write-data DIR  # only its --input-data files, to run perf_analyzer yourself

What a Triton user measures a server with, unchanged: perf_analyzer reads the model's metadata and configuration
(`GET /v2/models/mnist/config`, gRPC `ModelConfig`), then keeps `--concurrency` requests of `--batch` digits in
flight. One real `uvicorn app.main:app` (default batching, one torch thread, one decode thread, gRPC on) pinned to
core 0, perf_analyzer pinned to core 1, each load visited in interleaved rounds; figures are medians over rounds
of perf_analyzer's own (its CSV: inferences/s, p50 and p99 latency). Loads: `pixels` (UINT8 [B, 28, 28], only
normalised) and `images` (BYTES [B, 1], PNG files, preprocessed like /predict), each over HTTP (binary tensor
data) and gRPC (raw contents), the same MNIST test digits in both. Prints a markdown table and, for each input,
gRPC ÷ HTTP inferences/s.

The input data perf_analyzer needs has one trap, which `input_data` handles: a BYTES tensor's `b64` is the
tensor's serialised bytes, so each file carries its 4-byte little-endian length before it.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import logging
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.testing import free_port, running_server
from benchmarks.serve_throughput import SERVE, server_env
from benchmarks.serving import REPO, UVICORN_QUIET, add_server_flags, encode, mnist_test_digits, pinned
from mnist_model import ModelMetadata, Net, save_checkpoint

log = logging.getLogger("benchmarks.perf_analyzer")
ENV = "PERF_ANALYZER"
INSTALLED = REPO / ".tools/perf-analyzer/perf_analyzer"
INPUTS = ("pixels", "images")
PROTOCOLS = ("http", "grpc")


def find_perf_analyzer() -> str | None:
    """$PERF_ANALYZER, else what .ci/perf-analyzer-setup.sh installed, else `perf_analyzer` on PATH."""
    for candidate in (os.environ.get(ENV), str(INSTALLED), shutil.which("perf_analyzer")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def input_data(digits: np.ndarray) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """perf_analyzer's `--input-data` JSON for each input: one entry per digit (one batch row; perf_analyzer
    stacks `--batch` of them into a request). `pixels`: the 784 values. `images`: the digit as a PNG file in
    `b64`, which perf_analyzer sends as the BYTES tensor's serialised bytes, so the file's length goes first."""
    pixels: list[dict[str, Any]] = [
        {"pixels": {"content": digit.reshape(-1).tolist(), "shape": [28, 28]}} for digit in digits
    ]
    images: list[dict[str, Any]] = []
    for digit in digits:
        file = encode(Image.fromarray(digit), "PNG")
        serialised = struct.pack("<I", len(file)) + file
        images.append({"images": {"b64": base64.b64encode(serialised).decode(), "shape": [1]}})
    return {"pixels": {"data": pixels}, "images": {"data": images}}


def write_input_data(folder: Path, digits: np.ndarray) -> dict[str, Path]:
    """`input_data(digits)` as files `<input>.json` in `folder`, by input name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in input_data(digits).items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    return paths


@dataclass(frozen=True)
class Measured:
    """One perf_analyzer run's figures: inferences (images) per second, latencies, and how many requests it timed."""

    infer_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int


def run_perf_analyzer(
    binary: str,
    address: str,
    protocol: str,
    data: Path,
    *,
    batch: int,
    concurrency: int,
    window_requests: int,
    prefix: Sequence[str] = (),
) -> Measured:
    """perf_analyzer against model `mnist` at `address` (host:port) over `protocol` with `data` (`write_input_data`),
    measured in windows of `window_requests` requests until three agree within 50 % (a shared VM is noisy).
    Raises RuntimeError, with its output, when it fails or any request fails."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as report:
        command = [
            *prefix,
            binary,
            "-m",
            "mnist",
            "-u",
            address,
            "-i",
            protocol,
            "--input-data",
            str(data),
            "-b",
            str(batch),
            "--concurrency-range",
            str(concurrency),
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            str(window_requests),
            "--stability-percentage",
            "50",
            "--max-trials",
            "20",
            "-f",
            report.name,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        if done.returncode != 0 or re.search(r"error", output, re.IGNORECASE):
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output[-3000:]}")
        [row] = list(csv.DictReader(open(report.name)))
    counted = re.search(r"Request count: (\d+)", output)
    return Measured(
        infer_per_s=float(row["Inferences/Second"]),
        p50_ms=float(row["p50 latency"]) / 1000,  # microseconds in the CSV
        p99_ms=float(row["p99 latency"]) / 1000,
        requests=int(counted.group(1)) if counted else 0,
    )


def run(args: argparse.Namespace, binary: str) -> dict[tuple[str, str], list[Measured]]:
    """Start the server, then `rounds` interleaved rounds of every (protocol, input); each round's figures."""
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-bench-") as folder:
        workdir = Path(folder)
        checkpoint = args.checkpoint
        if not checkpoint.is_file():
            log.warning("%s is missing; timing an untrained checkpoint (same network, same cost)", checkpoint)
            checkpoint = workdir / "untrained.safetensors"
            save_checkpoint(checkpoint, Net(), ModelMetadata(command="perf_analyzer benchmark"))
        data = write_input_data(workdir, mnist_test_digits(args.digits))
        grpc_port = free_port()
        env = server_env(SERVE, checkpoint, args.precision) | {"MNIST_SERVE_GRPC_PORT": str(grpc_port)}
        prefix, client = pinned(args.server_cpu, realtime=False), pinned(args.client_cpu, realtime=False)
        loads = [(protocol, name) for name in INPUTS for protocol in PROTOCOLS]
        rounds: dict[tuple[str, str], list[Measured]] = {load: [] for load in loads}
        with running_server(env=env, server_args=UVICORN_QUIET, command_prefix=prefix, cwd=REPO) as server:
            addresses = {"http": server.url.removeprefix("http://"), "grpc": f"127.0.0.1:{grpc_port}"}
            for round_index in range(args.rounds):
                shift = round_index % len(loads)
                for protocol, name in loads[shift:] + loads[:shift]:
                    measured = run_perf_analyzer(
                        binary,
                        addresses[protocol],
                        protocol,
                        data[name],
                        batch=args.batch,
                        concurrency=args.concurrency,
                        window_requests=args.window_requests,
                        prefix=client,
                    )
                    rounds[(protocol, name)].append(measured)
                    log.info("%s %s: %.0f inferences/s", protocol, name, measured.infer_per_s)
    return rounds


def table(rounds: dict[tuple[str, str], list[Measured]], batch: int) -> str:
    """Medians (and the spread of inferences/s) per load, then gRPC ÷ HTTP per input."""
    lines = [
        f"| input ({batch} digits a request) | protocol | inferences/s (min–max) | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    median = {load: statistics.median(m.infer_per_s for m in results) for load, results in rounds.items()}
    for (protocol, name), results in rounds.items():
        rates = [m.infer_per_s for m in results]
        lines.append(
            f"| {name} | {protocol} | {median[(protocol, name)]:,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
            f"| {statistics.median(m.p50_ms for m in results):.1f} "
            f"| {statistics.median(m.p99_ms for m in results):.1f} |"
        )
    lines.append("")
    for name in INPUTS:
        lines.append(f"- {name}: gRPC ÷ HTTP inferences/s {median[('grpc', name)] / median[('http', name)]:.2f}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch", type=int, default=16, metavar="B", help="digits per request, perf_analyzer's -b (default: 16)"
    )
    parser.add_argument("--concurrency", type=int, default=4, metavar="C", help="requests in flight (default: 4)")
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaved rounds per load (default: 3)")
    parser.add_argument(
        "--window-requests", type=int, default=200, metavar="R", help="requests per measurement window (default: 200)"
    )
    parser.add_argument(
        "--digits", type=int, default=64, metavar="N", help="MNIST test digits in the input data (default: 64)"
    )
    parser.add_argument(
        "--write-data", type=Path, metavar="DIR", help="only write pixels.json and images.json to DIR, and stop"
    )
    add_server_flags(parser, "of the server (default: auto, the service's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.write_data:
        for name, path in write_input_data(args.write_data, mnist_test_digits(args.digits)).items():
            sys.stdout.write(f"{name}: {path}\n")
        return
    binary = find_perf_analyzer()
    if binary is None:
        parser.error(f"no perf_analyzer: run `bash .ci/perf-analyzer-setup.sh` or set {ENV}")
    if shutil.which("taskset") is None:
        parser.error("needs `taskset` on PATH (Debian: apt-get install util-linux)")
    start = time.monotonic()
    rounds = run(args, binary)
    log.info("done in %.0f s on %d CPUs, torch %s", time.monotonic() - start, os.cpu_count() or 0, torch.__version__)
    sys.stdout.write(
        f"uvicorn on CPU {args.server_cpu}, perf_analyzer on CPU {args.client_cpu}, {args.concurrency} requests in "
        f"flight, precision {args.precision}, median of {args.rounds} interleaved rounds\n\n"
        f"{table(rounds, args.batch)}\n"
    )


if __name__ == "__main__":
    main()
