"""A closed-loop gRPC load generator for one unary method, `hey`'s counterpart for the serving benchmarks.

    python -m benchmarks.grpc_load ADDRESS METHOD REQUEST_FILE --concurrency 4 --duration 3

`concurrency` calls in flight at all times (grpc.aio tasks on one channel, which is one HTTP/2 connection, as
`tritonclient.grpc` uses), each sending the same serialized request from REQUEST_FILE and reading the reply as
bytes (no parsing: the client's work per call stays small next to the server's). Prints one JSON line with what
`benchmarks.serving.hey` returns: rps, p50 and p99 in ms, and non_200 (calls that did not end OK). Run it as a
process of its own, pinned with `taskset` like hey (`run_grpc_load`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np


def _identity(data: bytes) -> bytes:
    return data


async def _load(address: str, method: str, request: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)]) as channel:
        call = channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        await call(request, timeout=60)  # connected and warm before the clock starts
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal failures
            while (start := time.perf_counter()) < deadline:
                try:
                    await call(request, timeout=60)
                except grpc.aio.AioRpcError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    times = np.array(latencies) * 1000
    return {
        "rps": len(latencies) / elapsed,
        "p50": float(np.percentile(times, 50)) if times.size else float("nan"),
        "p99": float(np.percentile(times, 99)) if times.size >= 100 else float("nan"),
        "non_200": failures,
    }


def run_grpc_load(
    address: str, method: str, request: Path, concurrency: int, seconds: float, prefix: Sequence[str]
) -> dict[str, float]:
    """Run this module as its own process (after `prefix`, e.g. `pinned(...)`); its figures, as `hey` gives them."""
    command = [*prefix, sys.executable, "-m", "benchmarks.grpc_load", address, method, str(request)]
    command += ["--concurrency", str(concurrency), "--duration", str(seconds)]
    report = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return json.loads(report.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="host:port")
    parser.add_argument("method", help="e.g. /inference.GRPCInferenceService/ModelInfer")
    parser.add_argument("request", type=Path, help="file holding the serialized request message")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C", help="calls in flight (default: 4)")
    parser.add_argument("--duration", type=float, default=3.0, metavar="S", help="seconds of load (default: 3)")
    args = parser.parse_args(argv)
    result = asyncio.run(_load(args.address, args.method, args.request.read_bytes(), args.concurrency, args.duration))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
