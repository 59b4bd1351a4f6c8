"""On a CUDA GPU (skipped without one): the shipped checkpoint served end to end over HTTP reads real MNIST digits
as the CPU does, and torchrun trains over NCCL. Run with `make test-gpu`; the other GPU tests sit beside the code
they test (test_predictor.py, test_hardware.py, test_run.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.testing import serve_in_process
from benchmarks.serving import encode
from mnist_model.checkpoint import read_metadata
from tests.helpers import REPO
from tests.test_run import run_args
from training.data import load_split

pytestmark = pytest.mark.cuda


def first_test_digits(mnist_root: Path, count: int) -> tuple[list[str], list[int]]:
    """The first `count` MNIST test digits as base64 PNGs, with their labels."""
    test = load_split(mnist_root, train=False)
    pngs = [encode(Image.fromarray(image.numpy().astype(np.uint8)), "PNG") for image in test.images[:count]]
    return [base64.b64encode(png).decode() for png in pngs], test.labels[:count].tolist()


async def batch_answers(settings: Settings, images: list[str]) -> tuple[dict, list[int]]:
    """GET /model and the digits POST /predict/batch answers for `images`, from an app built with `settings`."""
    async with serve_in_process(create_app(settings)) as client:
        described = (await client.get("/model")).json()
        digits = []
        for start in range(0, len(images), 64):  # MNIST_SERVE_MAX_BATCH_IMAGES's default
            response = await client.post("/predict/batch", json={"images": images[start : start + 64]})
            assert response.status_code == 200, response.text
            digits += [item["digit"] for item in response.json()["predictions"]]
        return described, digits


async def test_shipped_model_on_cuda_reads_mnist_digits_as_on_cpu(mnist_root, shipped_checkpoint):
    images, labels = first_test_digits(mnist_root, 256)
    on_gpu = Settings(model_path=shipped_checkpoint, device="cuda", precision="auto", max_batch_size=64)
    on_cpu = Settings(model_path=shipped_checkpoint, device="cpu", precision="float32", max_batch_size=64)
    described, gpu_digits = await batch_answers(on_gpu, images)
    _, cpu_digits = await batch_answers(on_cpu, images)
    assert described["runtime"]["device"].startswith("cuda")
    assert described["runtime"]["precision"] == "bfloat16"  # auto: native on every GPU from Ampere on
    assert sum(g == c for g, c in zip(gpu_digits, cpu_digits, strict=True)) >= 255  # bf16 may flip one close call
    assert sum(g == y for g, y in zip(gpu_digits, labels, strict=True)) >= 252  # the shipped model: ~99.5 %


def test_torchrun_trains_over_nccl_on_the_gpu(mnist_root, tmp_path):
    output = tmp_path / "nccl" / "m.safetensors"
    args = run_args(mnist_root, output, "--epochs", "2", "--ema-decay", "0", samples=2000)  # as test_run's GPU test
    args[args.index("--device") + 1] = "cuda"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [*command, "-m", "training.run", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process group: nccl backend, 1 processes" in result.stderr
    history = json.loads((output.parent / "m.history.json").read_text())
    assert history[0]["world_size"] == 1 and history[0]["distinct_samples"] == 2000
    metadata = read_metadata(output)
    assert metadata.hyperparameters["device"] == "cuda"  # as --device named it
    assert metadata.test_accuracy > 0.8
