"""Helpers to run the app: in-process (an HTTP client with the lifespan run), as a real server process, and
with a model without a network.

`StubModel` serves the test suite (gated forward passes for queue-full, timeout and readiness tests).
`serve_in_process` and `running_server` need the `dev` extra (httpx).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from fastapi import FastAPI

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

    def predict(self, pixels: np.ndarray) -> torch.Tensor:
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


@contextmanager
def running_server(
    command: Sequence[str],
    url: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    ready_timeout_s: float = 90.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (`command`, listening at `url`), wait until `GET {url}/readyz` answers 200, and
    stop it (SIGTERM to its own PID, then SIGKILL) when the block ends.

    `env` is added to this process's environment. Its stderr goes to a temporary file (a pipe nobody reads
    would fill up and stall the server); `RuntimeError` quotes its end when the server exits or is not ready
    within `ready_timeout_s`.
    """
    import httpx  # a dev dependency: imported here so that the service itself never needs it

    log = tempfile.TemporaryFile()
    process = subprocess.Popen(list(command), cwd=cwd, env=os.environ | dict(env or {}), stderr=log)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                state = f"exited with {process.returncode}" if process.poll() is not None else "was not ready"
                raise RuntimeError(f"{' '.join(command)} {state} within {ready_timeout_s:g} s\n{tail}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
