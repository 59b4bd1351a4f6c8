"""GET /healthz and /readyz: liveness always, readiness only after the warm-up forward pass."""

from __future__ import annotations

import asyncio
import threading

from app.config import Settings
from app.main import create_app
from app.testing import StubModel, serve_in_process
from tests.helpers import digit_png


async def test_readyz_is_503_until_the_warm_up_ran_while_healthz_is_200():
    gate = threading.Event()
    app = create_app(Settings(), model_factory=lambda _: StubModel(warm_up_gate=gate))
    try:
        async with serve_in_process(app, wait_ready=False) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["detail"] == "the model is loading or warming up"
            assert response.headers["Retry-After"] == "1"
            gate.set()
            for _ in range(500):
                response = await client.get("/readyz")
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.01)
            assert response.json() == {"status": "ready"}
    finally:
        gate.set()


async def test_a_failed_warm_up_keeps_the_service_unready_and_predictions_503():
    app = create_app(Settings(), model_factory=lambda _: StubModel(fail_warm_up=True))
    async with serve_in_process(app, wait_ready=False) as client:
        batcher = app.state.service.batcher
        while batcher.failure is None:
            await asyncio.sleep(0.01)
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert "warm-up failed" in response.json()["detail"]
        response = await client.post("/predict", content=digit_png(), headers={"Content-Type": "image/png"})
        assert response.status_code == 503 and "warm-up failed" in response.json()["detail"]
        assert response.headers["Retry-After"] == "5"
        response = await client.post("/predict", content=b"x", headers={"Content-Type": "image/png"})
        assert response.status_code == 415  # a bad image is refused without asking the model
        assert (await client.get("/healthz")).status_code == 200


async def test_without_a_running_lifespan_everything_but_liveness_is_503():
    import httpx

    app = create_app(Settings(), model_factory=lambda _: StubModel())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/model")).status_code == 503
        response = await client.post("/predict", content=b"x")
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
