"""The model step: a checkpoint on its device, turning a batch of preprocessed images into probabilities.

Only the batcher's worker thread calls `predict`, so nothing here needs a lock.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

import torch

from app.config import ENV_PREFIX, Settings
from mnist_model import ModelMetadata, load_checkpoint
from mnist_model import device as device_rules
from mnist_model.calibration import apply_temperature
from mnist_model.hardware import native_bf16

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Model(Protocol):
    """What the batcher and the routes need from a model; `Predictor` is the real one, tests pass fakes."""

    name: str
    version: str
    metadata: ModelMetadata

    def warm_up(self) -> None:
        """Run the first forward passes so that the first request does not pay for lazy initialisation."""

    def predict(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Probabilities (N×10 float32 on CPU, rows summing to 1) for N preprocessed 1×28×28 images."""

    def describe(self) -> dict[str, object]:
        """Device, precision and threads, for GET /model."""


def resolve_device(name: str) -> torch.device:
    """MNIST_SERVE_DEVICE → torch.device, by `mnist_model.device`'s rules; a missing GPU is an error naming it."""
    return device_rules.resolve_device(name, setting=f"{ENV_PREFIX}DEVICE")


def checkpoint_version(path: Path) -> str:
    """The first 12 hex digits of the checkpoint's SHA-256: names exactly which weights answered."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """MNIST_SERVE_PRECISION → dtype; `auto` takes bfloat16 where it is native (the model was trained in bf16
    autocast, and on a CPU with AVX512-BF16 it halves the cost of a batch), else float32."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return DTYPES[precision]


class Predictor:
    """A checkpoint on a device. Raises `CheckpointError` (bad file) or `RuntimeError` (bad device)."""

    def __init__(self, settings: Settings) -> None:
        self.device = resolve_device(settings.device)
        if self.device.type == "cpu" and settings.num_threads:
            torch.set_num_threads(settings.num_threads)
        self.dtype = resolve_dtype(settings.precision, self.device)
        if self.device.type == "cpu" and self.dtype == torch.float16:  # no fast float16 kernels on CPU
            log.warning("MNIST_SERVE_PRECISION=float16 is CUDA-only; CPU runs float32 (try bfloat16)")
            self.dtype = torch.float32
        model, self.metadata = load_checkpoint(settings.model_path, self.device)
        # channels_last lets oneDNN (CPU) and cuDNN (tensor cores) use their fast convolutions (~2× on CPU).
        self.model = model.to(self.dtype).to(memory_format=torch.channels_last)
        self.name = self.metadata.architecture
        self.temperature = self.metadata.temperature  # calibration fitted at training time (1.0: none)
        self.version = checkpoint_version(Path(settings.model_path))
        self.path = Path(settings.model_path).resolve()
        self.max_batch_size = settings.max_batch_size
        # One pinned staging buffer reused by every batch: page-locked memory makes the GPU copy async.
        self._staging = (
            torch.empty((settings.max_batch_size, 1, 28, 28), dtype=torch.float32).pin_memory()
            if self.device.type == "cuda"
            else None
        )

    def warm_up(self) -> None:
        """Forward a batch of one and a full batch, so CUDA context, cuDNN plans and caches exist."""
        blank = torch.zeros((1, 28, 28))
        for size in sorted({1, self.max_batch_size}):
            self.predict([blank] * size)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Stack, copy to the device, run the network; calibrated probabilities, softmax(log_probs / T), as float32
        on the CPU (T is the checkpoint's temperature)."""
        with torch.inference_mode():
            if self._staging is not None:
                batch = torch.stack(images, out=self._staging[: len(images)])
                batch = batch.to(self.device, dtype=self.dtype, non_blocking=True)
            else:
                batch = torch.stack(images).to(self.dtype)
            log_probs = self.model(batch.contiguous(memory_format=torch.channels_last))
            # Softmax of log-probabilities in float32 renormalises whatever rounding half precision left.
            return apply_temperature(log_probs.float(), self.temperature).cpu()

    def describe(self) -> dict[str, object]:
        """Where and how the model runs, for GET /model."""
        return {
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "num_threads": torch.get_num_threads(),
            "checkpoint": str(self.path),
            "cuda_device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
        }
