"""mnist-serve's own work per request, without HTTP or the model: what issue 9's c=64 ratio is missed by on a CPU
where the forward pass is slow.

    taskset -c 0 python -m benchmarks.app_overhead                 # ~20 s
    taskset -c 0 python -m benchmarks.app_overhead --rounds 12 --window 1.0 --concurrency 64

`serve_throughput` measures whole servers under `hey`: its figures carry uvicorn's HTTP work, the forward passes and
the shared VM's noise, in which a change of 20 µs a request (2 % of a c=64 request on the AVX2 VM) cannot be seen.
This calls the ASGI apps in one process instead, `--concurrency` clients each posting a 28×28 MNIST test digit as PNG
to /predict over and over, on one event loop (uvloop, as uvicorn runs where it is installed):
- mnist-serve: `app.main.create_app` with its defaults and the shipped checkpoint, everything as served (middleware,
  routing, parsing, batching, the gate's answer, JSON) except the network's passes, which return one answer computed
  at start-up (`FixedAnswers`): the serving work around the model;
- floor: `benchmarks/asgi_floor_app.py`, which reads the body, decodes the PNG as mnist-serve does and answers a
  constant: the least a request costs in Python.
The two alternate in windows of `--window` seconds for `--rounds` rounds (which one goes first alternates), so the
noise of a shared machine falls on both; the report gives each one's µs a request (median and spread over rounds)
and, per round, mnist-serve's µs less the floor's: the work mnist-serve itself adds to a request. Every answer is
checked (200, and the fixed answer's digit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import torch
from PIL import Image
from starlette.types import ASGIApp, Message, Scope

from app.config import Settings
from app.main import create_app
from app.predictor import Predictor
from benchmarks.asgi_floor_app import app as floor_app
from benchmarks.serving import encode, mnist_test_digits


class FixedAnswers(Predictor):
    """The shipped `Predictor` whose forward passes return its answer for the first MNIST test digit (computed once,
    at start-up) for every image: everything else (the gate's column, its threshold, `describe`, hence forward passes
    on the event loop) is the served model's."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        digits = np.repeat(mnist_test_digits(1), settings.max_batch_size, axis=0)
        self._answer = super().predict(digits, None)

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        return self._answer[: len(pixels)]


@dataclass(frozen=True)
class Upload:
    """The request every client sends: its ASGI scope and body."""

    scope: Scope
    body: bytes


def digit_upload() -> Upload:
    """POST /predict of the first MNIST test digit as a PNG, raw body, as `hey` sends it in `serve_throughput`."""
    body = encode(Image.fromarray(mnist_test_digits(1)[0]), "PNG")  # the body serve_throughput's hey sends
    headers = [(b"host", b"bench"), (b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    return Upload(scope, body)


async def post(app: ASGIApp, upload: Upload) -> bytes:
    """One request through `app`; its body (raises unless the answer is a 200)."""
    sent = False
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:  # the app waits for a disconnect only after answering
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": upload.body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(dict(upload.scope), receive, send)
    if messages[0]["status"] != 200:
        raise RuntimeError(f"the app answered {messages[0]['status']}: {messages[1].get('body', b'')!r}")
    return messages[1]["body"]


async def window(app: ASGIApp, upload: Upload, clients: int, seconds: float) -> float:
    """µs a request with `clients` posting to `app` back to back for `seconds` (after a short start)."""
    answered = 0
    running = True

    async def client() -> None:
        nonlocal answered
        while running:
            await post(app, upload)
            answered += 1
            await asyncio.sleep(0)  # the floor answers without suspending: let the other clients in

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(min(0.1, seconds / 4))
    start_count, start = answered, time.perf_counter()
    await asyncio.sleep(seconds)
    count, elapsed = answered - start_count, time.perf_counter() - start
    running = False
    await asyncio.gather(*tasks)
    return elapsed / max(count, 1) * 1e6


async def measure(rounds: int, seconds: float, clients: int) -> dict[str, list[float]]:
    """µs a request of each app, one figure per round."""
    upload = digit_upload()
    served = create_app(Settings(num_threads=1, decode_threads=1), model_factory=FixedAnswers)
    async with served.router.lifespan_context(served):
        service = served.state.service
        while not service.batcher.ready:
            await asyncio.sleep(0.05)
        expected = orjson.loads(await post(served, upload))["digit"]
        apps: dict[str, ASGIApp] = {"mnist-serve": served, "floor": floor_app}
        figures: dict[str, list[float]] = {name: [] for name in apps}
        for round_index in range(rounds):
            order = list(apps) if round_index % 2 == 0 else list(apps)[::-1]
            for name in order:
                figures[name].append(await window(apps[name], upload, clients, seconds))
        if orjson.loads(await post(served, upload))["digit"] != expected:
            raise RuntimeError("mnist-serve's answer changed during the run")
    return figures


def spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def report(figures: dict[str, list[float]], clients: int) -> list[str]:
    """The lines the benchmark prints: each app's µs a request, and mnist-serve's own work per request."""
    own = [served - floor for served, floor in zip(figures["mnist-serve"], figures["floor"], strict=True)]
    return [
        f"POST /predict, 28×28 PNG, {clients} clients in one process; µs a request, median (min–max) over "
        f"{len(own)} rounds:",
        *(f"  {name:12s} {spread(values)}" for name, values in figures.items()),
        f"  mnist-serve's own work a request (mnist-serve − floor, per round): {spread(own)} µs",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds of the two apps")
    parser.add_argument("--window", type=float, default=1.0, metavar="S", help="seconds each app runs in a round")
    parser.add_argument("--concurrency", type=int, default=64, metavar="C", help="clients posting at once")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.window <= 0 or args.concurrency < 1:
        parser.error("--rounds and --concurrency must be at least 1, --window positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    run = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # uvicorn then runs asyncio's own loop too
        pass
    figures = run(measure(args.rounds, args.window, args.concurrency))
    sys.stdout.write("\n".join(report(figures, args.concurrency)) + "\n")


if __name__ == "__main__":
    main()
