"""App factory and start-up: bad settings or checkpoints stop it with a clear message; /docs has examples.

The `slow` tests start `uvicorn app.main:app` as a real process, as an operator would (`app.testing.running_server`).
"""

from __future__ import annotations

import logging
import socket

import pytest

from app.config import Settings, SettingsError
from app.main import create_app
from app.testing import ServerExited, StubModel, running_server, serve_in_process
from mnist_model import CheckpointError


async def test_settings_are_read_at_start_up_not_at_import(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_MAX_QUEUE_SIZE", "none")
    app = create_app()  # what `app.main:app` does at import: must not fail
    with pytest.raises(SettingsError, match="MNIST_SERVE_MAX_QUEUE_SIZE"):
        async with app.router.lifespan_context(app):
            pass


async def test_missing_checkpoint_stops_start_up(tmp_path):
    app = create_app(Settings(model_path=tmp_path / "absent.safetensors", device="cpu"))
    with pytest.raises(CheckpointError, match="absent.safetensors"):
        async with app.router.lifespan_context(app):
            pass


async def test_start_up_logs_where_and_in_what_precision_the_model_runs(caplog, untrained_checkpoint):
    settings = Settings(model_path=untrained_checkpoint, device="cpu", precision="float32")
    with caplog.at_level(logging.INFO, logger="app.main"):
        async with serve_in_process(create_app(settings)) as client:
            model = (await client.get("/model")).json()
    assert f"serving {model['name']} version {model['version']} on cpu in float32" in caplog.messages


async def test_docs_show_json_multipart_and_raw_body_examples():
    async with serve_in_process(create_app(Settings(), model_factory=lambda _: StubModel())) as client:
        spec = (await client.get("/openapi.json")).json()
        assert (await client.get("/docs")).status_code == 200
    single = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "image/png", "image/jpeg"} <= set(single)
    assert single["application/json"]["example"]["image"]
    assert single["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    batch = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["example"]["images"]
    assert batch["multipart/form-data"]["schema"]["properties"]["files"]["type"] == "array"
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(responses)
    assert spec["components"]["schemas"]["Prediction"]["examples"][0]["digit"] == 7


@pytest.mark.slow
def test_uvicorn_refuses_to_start_without_a_checkpoint_and_says_what_to_do(tmp_path):
    with pytest.raises(ServerExited) as exited:
        with running_server(settings={"model_path": str(tmp_path / "absent.safetensors")}, cwd="/"):
            pass
    assert exited.value.returncode != 0
    assert "no checkpoint at" in exited.value.log and "MNIST_SERVE_MODEL_PATH" in exited.value.log


@pytest.mark.slow
def test_uvicorn_serves_from_any_directory_and_refuses_big_bodies_unread(untrained_checkpoint):
    settings = {"model_path": str(untrained_checkpoint), "device": "cpu", "max_body_bytes": "100000"}
    with (
        running_server(settings=settings, cwd="/", ready_timeout_s=60) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection,
    ):
        # Headers only: a server that waited for the 1 GB body would never answer.
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = ""
        while not answer.endswith("}") and (piece := connection.recv(65536).decode()):
            answer += piece
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "MNIST_SERVE_MAX_BODY_BYTES" in answer
