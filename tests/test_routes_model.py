"""GET /model: the checkpoint's metadata, where it runs, and the batching settings in force."""

from __future__ import annotations

import torch

from app.config import Settings
from app.gate import NO_GATE_NOTE
from app.main import create_app
from app.testing import serve_in_process
from mnist_model import ModelMetadata, Net, save_checkpoint


async def test_model_card_describes_checkpoint_runtime_and_batching(tmp_path):
    checkpoint = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    written = ModelMetadata(
        epochs=4,
        test_accuracy=0.97,
        per_class_accuracy=[0.97] * 10,
        dataset_sha256={"train": "ab", "test": "cd"},
        created_at="2026-01-01T00:00:00+00:00",
        command="python -m training.run --epochs 4",
        seed=3,
        hyperparameters={"lr": 0.01},
    )
    save_checkpoint(checkpoint, Net(), written)
    settings = Settings(model_path=checkpoint, device="cpu", precision="float32", max_batch_size=8, max_batch_wait_ms=2)
    async with serve_in_process(create_app(settings)) as client:
        response = await client.get("/model")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "pytorch-examples-mnist-cnn" and len(body["version"]) == 12
    assert body["ready"] is True
    assert body["metadata"] == {
        "architecture": "pytorch-examples-mnist-cnn",
        "format_version": 1,
        "mean": 0.1307,
        "std": 0.3081,
        "epochs": 4,
        "test_accuracy": 0.97,
        "test_loss": None,
        "per_class_accuracy": [0.97] * 10,
        "dataset_sha256": {"train": "ab", "test": "cd"},
        "torch_version": torch.__version__,
        "created_at": "2026-01-01T00:00:00+00:00",
        "command": "python -m training.run --epochs 4",
        "seed": 3,
        "hyperparameters": {"lr": 0.01},
        "temperature": 1.0,
        "validation": {},
        "calibration": {},
        "digit_gate": {"note": NO_GATE_NOTE},
        "int8": {},
    }
    assert body["runtime"]["device"] == "cpu" and body["runtime"]["precision"] == "float32"
    assert body["runtime"]["checkpoint"] == str(checkpoint.resolve())
    assert body["batching"]["max_batch_size"] == 8 and body["batching"]["max_batch_wait_ms"] == 2
    assert set(body["limits"]) == {"max_body_bytes", "max_image_pixels", "max_batch_images"}
