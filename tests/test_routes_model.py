"""GET /model: the checkpoint's metadata, where it runs, and the batching settings in force."""

from __future__ import annotations

import dataclasses

from app.config import Settings
from app.main import create_app
from app.testing import serve_in_process
from mnist_model.checkpoint import read_metadata


async def test_model_card_describes_checkpoint_runtime_and_batching(untrained_checkpoint):
    settings = Settings(
        model_path=untrained_checkpoint, device="cpu", precision="float32", max_batch_size=8, max_batch_wait_ms=2
    )
    async with serve_in_process(create_app(settings)) as client:
        response = await client.get("/model")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "pytorch-examples-mnist-cnn" and len(body["version"]) == 12
    assert body["ready"] is True
    assert body["metadata"] == dataclasses.asdict(read_metadata(untrained_checkpoint))
    assert body["runtime"]["device"] == "cpu" and body["runtime"]["precision"] == "float32"
    assert body["runtime"]["checkpoint"] == str(untrained_checkpoint.resolve())
    assert body["batching"]["max_batch_size"] == 8 and body["batching"]["max_batch_wait_ms"] == 2
    assert set(body["limits"]) == {"max_body_bytes", "max_image_pixels", "max_batch_images"}
