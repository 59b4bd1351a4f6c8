"""Helpers to run the app for tests and benchmarks: in-process, as a real server process, or without a network.

`StubModel` serves the test suite (gated forward passes for queue-full, timeout and readiness tests).
`serve_in_process` calls the app in-process; `running_server` starts uvicorn, or gunicorn with uvicorn workers as
`make serve` does, and waits for /readyz. Both need the `dev` extra (httpx). They live in `app` rather than
`tests` so that the benchmarks can import them too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import numpy as np
import torch
from fastapi import FastAPI

from app.config import ENV_PREFIX
from mnist_model import ModelMetadata

if TYPE_CHECKING:
    import httpx


class StubModel:
    """A `Model` that answers uniform probabilities without a network; `gate` (when given) blocks each pass.

    It has no device, so MNIST_SERVE_FORWARD_ON=auto runs it on a worker thread: a gated pass never blocks
    the event loop.

    It records the size of every batch it saw; `entered` is set when a forward pass starts (before the gate).
    `warm_up_gate` blocks the warm-up; `fail_warm_up` / `fail_predict` make those raise.
    """

    name = "stub"
    version = "0"
    digit_gate = None  # answers carry `is_digit: null`

    def __init__(
        self,
        *,
        gate: threading.Event | None = None,
        warm_up_gate: threading.Event | None = None,
        fail_warm_up: bool = False,
        fail_predict: bool = False,
    ) -> None:
        self.metadata = ModelMetadata(command="stub")
        self.gate = gate
        self.warm_up_gate = warm_up_gate
        self.fail_warm_up = fail_warm_up
        self.fail_predict = fail_predict
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []

    def warm_up(self) -> None:
        """Wait for `warm_up_gate`, then succeed or raise as configured."""
        if self.warm_up_gate is not None:
            self.warm_up_gate.wait()
        if self.fail_warm_up:
            raise RuntimeError("stub warm-up failure")

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        """Uniform probabilities for each image (uint8 N×28×28), after the gate opens."""
        self.batch_sizes.append(len(pixels))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail_predict:
            raise RuntimeError("stub forward failure")
        return torch.full((len(pixels), 10), 0.1)

    def describe(self) -> dict[str, object]:
        """No device: the stub never runs a network."""
        return {"device": "none", "precision": "none", "num_threads": torch.get_num_threads()}


@asynccontextmanager
async def serve_in_process(
    app: FastAPI, *, wait_ready: bool = True, raise_app_exceptions: bool = True, ready_timeout_s: float = 30.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield an `httpx.AsyncClient` that calls it in-process (base URL http://test).

    With `wait_ready`, it first polls /readyz until the warm-up is done, as a load balancer would.
    """
    import httpx  # a dev dependency: imported here so that the service itself never needs it

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            deadline = time.monotonic() + ready_timeout_s
            while wait_ready and (await client.get("/readyz")).status_code != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the app was not ready within {ready_timeout_s} s")
                await asyncio.sleep(0.01)
            yield client


def free_port() -> int:
    """A loopback port nobody listens on (the OS picks it), for a server started next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerExited(RuntimeError):
    """The server process ended before it was ready; `log` is what it printed (stdout and stderr)."""

    def __init__(self, returncode: int, log: str) -> None:
        super().__init__(f"the server exited with status {returncode} before it was ready:\n{log[-3000:]}")
        self.returncode = returncode
        self.log = log


@dataclass(frozen=True)
class RunningServer:
    """A server process that answered GET /readyz with 200 (for gunicorn, `process` is the master); `output()` is
    what it has printed so far (stdout and stderr)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    output: Callable[[], str]


Server = Literal["uvicorn", "gunicorn"]
GUNICORN_CONFIG = "python:app.gunicorn_conf"
"""gunicorn's settings for this app (`make serve`, the image): workers and threads sized from the CPUs."""


@contextmanager
def running_server(
    target: str = "app.main:app",
    *,
    server: Server = "uvicorn",
    settings: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    server_args: Sequence[str] = (),
    command_prefix: Sequence[str] = (),
    cwd: str | Path | None = None,
    ready_timeout_s: float = 90.0,
) -> Iterator[RunningServer]:
    """Serve `target` on a free loopback port; yield once /readyz is 200; stop it (SIGTERM, then SIGKILL) after.

    `server`: `python -m uvicorn target`, or `python -m gunicorn -c python:app.gunicorn_conf target` (uvicorn
    workers, WEB_CONCURRENCY of them, forked after one import: what `make serve` and the image run).
    `settings` are MNIST_SERVE_* values by field name (`{"device": "cpu"}` sets MNIST_SERVE_DEVICE), on top of
    this process's environment and `env`. `server_args` go after the target (`--factory`, `--log-level`, ...);
    `command_prefix` goes before the interpreter (e.g. `taskset -c 0`; it must exec the command, so that the
    process stopped at the end is the server). Raises `ServerExited` when the process ends before it is ready,
    `TimeoutError` when it is not ready within `ready_timeout_s`. Its output goes to a temporary file (a pipe
    nobody reads would block a chatty server) that the errors quote.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    variables = {f"{ENV_PREFIX}{name.upper()}": value for name, value in (settings or {}).items()}
    environment = {**os.environ, **(env or {}), **variables}
    if server == "gunicorn":
        launch = ["gunicorn", "-c", GUNICORN_CONFIG, target, *server_args, "--bind", f"127.0.0.1:{port}"]
    else:
        launch = ["uvicorn", target, *server_args, "--host", "127.0.0.1", "--port", str(port)]
    command = [*command_prefix, sys.executable, "-m", *launch]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while not _is_ready(url):
                if process.poll() is not None:
                    raise ServerExited(process.returncode, _read(log))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} was not ready within {ready_timeout_s} s:\n{_read(log)[-3000:]}")
                time.sleep(0.2)
            yield RunningServer(url, port, process, lambda: _read(log))
        finally:
            process.terminate()  # gunicorn's master stops its workers gracefully (graceful_timeout)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _is_ready(url: str) -> bool:
    import httpx  # a dev dependency: imported here so that the service itself never needs it

    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _read(log: IO[bytes]) -> str:
    """What the server has written to `log` so far, without moving the file's offset, which a running server's
    writes share (a seek here could make them land mid-file)."""
    return os.pread(log.fileno(), os.fstat(log.fileno()).st_size, 0).decode(errors="replace")
