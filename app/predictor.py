"""The model step: a checkpoint on its device, turning a batch of MNIST-format images into probabilities.

Only the batcher calls `predict`, one batch at a time, so nothing here needs a lock.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from app.config import ENV_PREFIX, Settings
from app.cpus import available_cpus
from app.gate import GATE_OFF_NOTE, NO_GATE_NOTE, DigitGate, GateError, channel_means, network_features
from mnist_model import CheckpointError, ModelMetadata, checkpoint_version, load_checkpoint, normalize
from mnist_model import device as device_rules
from mnist_model.hardware import native_bf16
from mnist_model.head import CalibratedHead
from mnist_model.inference import InferenceNet
from mnist_model.malloc import keep_freed_memory
from mnist_model.quantized import Int8InferenceNet, Int8Ranges, QuantizationError, int8_available

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PROBABILITIES = 10
"""Columns of probabilities in a row of `Model.predict` (digits 0–9); with a digit gate its score follows."""


class Model(Protocol):
    """What the batcher and the routes need from a model; `Predictor` is the real one, tests pass fakes."""

    name: str
    version: str
    metadata: ModelMetadata
    digit_gate: DigitGate | None

    def warm_up(self) -> None:
        """Run the first forward passes so that the first request does not pay for lazy initialisation."""

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        """Probabilities (N×10 float32 on CPU, rows summing to 1) for MNIST-format images (uint8 N×28×28,
        white ink on black), normalised by the model with its checkpoint's mean/std. With a `digit_gate`, each row
        has an 11th column: the gate's score, from the network and `cues` (N×9 float32 `app.gate.CUE_FEATURES` of
        each upload; None: all MNIST-format), compared with `digit_gate.threshold` for `is_digit`. The batcher
        passes fresh arrays for each batch: the model may keep or change them."""

    def describe(self) -> dict[str, object]:
        """Device, precision and threads, for GET /model."""


def resolve_device(name: str) -> torch.device:
    """MNIST_SERVE_DEVICE → torch.device, by `mnist_model.device`'s rules; a missing GPU is an error naming it."""
    return device_rules.resolve_device(name, setting=f"{ENV_PREFIX}DEVICE")


def resolve_precision(precision: str, device: torch.device, metadata: ModelMetadata) -> str:
    """MNIST_SERVE_PRECISION → what the model runs in: `float32`, `bfloat16`, `float16` or `int8`.

    `auto` takes bfloat16 where it is native (the model was trained in bf16 autocast, and on a CPU with AVX512-BF16
    it halves the cost of a batch); else, on a CPU, int8 convolutions where the checkpoint records their ranges
    (`mnist_model.quantized`: batches ~1.7× cheaper on an AVX2 core); else float32. A precision the device
    cannot run fast or at all (float16 on a CPU; int8 on a GPU, without ranges or without the engine) is logged and
    runs float32."""
    if precision == "auto":
        if native_bf16(device):
            return "bfloat16"
        if device.type != "cpu":
            return "float32"
        problem = _int8_problem(metadata)
        if problem is not None:  # said once at start-up: a retrained checkpoint may just lack its ranges
            log.info("MNIST_SERVE_PRECISION=auto: float32 on this CPU (no native bf16), not int8: %s", problem)
            return "float32"
        return "int8"
    if precision == "float16" and device.type == "cpu":  # no fast float16 kernels on CPU
        log.warning("MNIST_SERVE_PRECISION=float16 is CUDA-only; CPU runs float32 (try bfloat16)")
        return "float32"
    if precision == "int8":
        problem = "int8 convolutions run on CPUs only" if device.type != "cpu" else _int8_problem(metadata)
        if problem is not None:
            log.warning("MNIST_SERVE_PRECISION=int8: %s; running float32", problem)
            return "float32"
    return precision


def _int8_problem(metadata: ModelMetadata) -> str | None:
    """Why int8 cannot run with this checkpoint and torch build, or None where it can."""
    if not int8_available():
        return "oneDNN's int8 convolution does not run here (x86 CPUs with a oneDNN build of torch only)"
    try:
        Int8Ranges.from_metadata(metadata.int8)
    except QuantizationError as exc:
        return str(exc)
    return None


class Predictor:
    """A checkpoint on a device. Raises `CheckpointError` (bad file) or `RuntimeError` (bad device).

    Without `settings.digit_gate` (MNIST_SERVE_DIGIT_GATE=false) the checkpoint's digit gate is not loaded: no
    gate features are computed and `is_digit` is null. `with_gate=False` does the same whatever the settings say
    and whatever the checkpoint holds: what `app.gate.fit` needs to refit a gate this code can no longer use."""

    def __init__(self, settings: Settings, *, with_gate: bool = True) -> None:
        self.device = resolve_device(settings.device)
        if self.device.type == "cpu":  # torch's own default counts the host's cores, not a container's quota
            torch.set_num_threads(settings.num_threads or available_cpus())
            keep_freed_memory()  # the activations' buffers reused, not faulted in afresh (see mnist_model.malloc)
        model, self.metadata = load_checkpoint(settings.model_path, self.device)
        self.precision = resolve_precision(settings.precision, self.device, self.metadata)
        self.dtype = DTYPES.get(self.precision, torch.float32)  # int8: float32 around the int8 convolutions
        use_gate = with_gate and settings.digit_gate
        try:
            self.digit_gate = DigitGate.from_metadata(self.metadata.digit_gate) if use_gate else None
        except GateError as exc:
            raise CheckpointError(f"{settings.model_path}: {exc}") from exc
        self.head = CalibratedHead(model.fc2, self.metadata.temperature)  # from fc2's float32 weights
        channels, columns = model.conv2.out_channels, model.fc1.in_features  # what fc1 reads of the maps
        self._gate = self.digit_gate.serving(channels, columns) if self.digit_gate is not None else None
        if with_gate and not settings.digit_gate:
            log.info("%s", GATE_OFF_NOTE)
        elif self.digit_gate is None and with_gate:
            log.warning("%s: %s", settings.model_path, NO_GATE_NOTE)
        # channels_last lets oneDNN (CPU) and cuDNN (tensor cores) use their fast convolutions (~2× on CPU);
        # InferenceNet runs the same function with a cheaper max-pool and flattening (mnist_model.inference), and
        # computes the gate's folded rows in fc1's matrix product.
        net = model.to(self.dtype).to(memory_format=torch.channels_last)
        extra_rows = None if self._gate is None else self._gate.readout_rows
        self.model = (
            Int8InferenceNet(net, Int8Ranges.from_metadata(self.metadata.int8), self._input_range(), extra_rows)
            if self.precision == "int8"
            else InferenceNet(net, extra_rows=extra_rows)
        )
        self.name = self.metadata.architecture
        self.temperature = self.metadata.temperature  # calibration fitted at training time (1.0: none)
        self.version = checkpoint_version(Path(settings.model_path))
        self.path = Path(settings.model_path).resolve()
        self.max_batch_size = settings.max_batch_size
        # One pinned staging buffer reused by every batch: page-locked memory makes the GPU copy async. The
        # pixels travel as uint8 (a quarter of float32's bytes) and are normalised on the device.
        self._staging = (
            torch.empty((settings.max_batch_size, 28, 28), dtype=torch.uint8).pin_memory()
            if self.device.type == "cuda"
            else None
        )

    def warm_up(self) -> None:
        """Forward a batch of one and a full batch, so CUDA context, cuDNN plans and caches exist."""
        for size in sorted({1, self.max_batch_size}):
            self.predict(np.zeros((size, 28, 28), np.uint8))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict(self, pixels: np.ndarray, cues: np.ndarray | None = None) -> torch.Tensor:
        """Copy to the device, normalise with the checkpoint's mean/std, run the network to fc1 (with the gate's
        rows); then on the CPU the calibrated probabilities, softmax(logits / T) with the checkpoint's
        temperature T, as float32; with a gate, its score follows (see `Model.predict`)."""
        readouts = self._readouts(pixels)
        answer = self.head(readouts[:, : self.model.fc1_units])  # the gate's rows follow fc1's columns
        if self._gate is None:
            return torch.from_numpy(answer.probabilities)
        rows = np.empty((len(readouts), PROBABILITIES + 1), np.float32)
        rows[:, :PROBABILITIES] = answer.probabilities
        rows[:, PROBABILITIES] = self._gate.scores(readouts, answer, cues)
        return torch.from_numpy(rows)

    def gate_inputs(self, pixels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Calibrated probabilities (N×10) and `app.gate.network_features` (N×194 float32) of MNIST-format images,
        as the service computes them (same device, precision, normalisation): what the gate is fitted on."""
        with torch.inference_mode():
            maps = self._conv_maps(pixels)
            means = channel_means(maps).float().cpu().numpy()
            pre_activations = self.model.readout(maps)[:, : self.model.fc1_units].float().cpu().numpy()
        answer = self.head(pre_activations)
        features = network_features(pre_activations, means, answer.max_probability, answer.energy)
        return torch.from_numpy(answer.probabilities), features

    def _readouts(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N×28×28 images → `InferenceNet.readout` of their maps as float32 on the CPU (N×(128 + R): fc1's
        pre-activations, then the gate's R rows, if any)."""
        with torch.inference_mode():
            return self.model.readout(self._conv_maps(pixels)).float().cpu().numpy()

    def _conv_maps(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 N×28×28 images → the network's convolutional maps: copied to the device, normalised with the
        checkpoint's mean/std, in the model's dtype and channels-last layout (call in inference mode)."""
        batch = torch.from_numpy(pixels)
        if self._staging is not None:
            batch = self._staging[: len(pixels)].copy_(batch).to(self.device, non_blocking=True)
        batch = normalize(batch, self.metadata.mean, self.metadata.std).to(self.dtype).unsqueeze(1)
        return self.model.conv_maps(batch.contiguous(memory_format=torch.channels_last))

    def _input_range(self) -> tuple[float, float]:
        """The normalised values of a black and a white pixel (what int8's input quantization spans)."""
        black, white = normalize(torch.tensor([0, 255], dtype=torch.uint8), self.metadata.mean, self.metadata.std)
        return float(black), float(white)

    def describe(self) -> dict[str, object]:
        """Where and how the model runs, for GET /model."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "num_threads": torch.get_num_threads(),
            "checkpoint": str(self.path),
            "cuda_device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
        }
