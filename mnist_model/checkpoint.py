"""The checkpoint format: weights in safetensors (no pickle, so loading can never run code) plus metadata.

Safetensors metadata is a flat str→str map; each field of `ModelMetadata` is stored JSON-encoded under its own key
so that `safetensors`'s own tools (and a human with `safe_open(...).metadata()`) can read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from mnist_model.network import ARCHITECTURE, Net
from mnist_model.normalize import MNIST_MEAN, MNIST_STD

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or made for another model; the message says which and what to do."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a checkpoint records about how it was made, so serving and model cards need nothing else."""

    architecture: str = ARCHITECTURE
    format_version: int = FORMAT_VERSION
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    epochs: int = 0
    test_accuracy: float | None = None
    test_loss: float | None = None
    per_class_accuracy: list[float] = field(default_factory=list)
    dataset_sha256: dict[str, str] = field(default_factory=dict)
    torch_version: str = torch.__version__
    created_at: str = ""
    command: str = ""
    seed: int | None = None
    hyperparameters: dict[str, object] = field(default_factory=dict)
    temperature: float = 1.0
    """Calibration: serving answers softmax(log_probs / temperature); 1.0 (uncalibrated) for older checkpoints."""
    validation: dict[str, object] = field(default_factory=dict)
    """The held-out training images (count, seed, indices_sha256: `training.data.holdout_indices` rebuilds them)
    and the model's accuracy and loss on them; empty when nothing was held out."""
    calibration: dict[str, object] = field(default_factory=dict)
    """How `temperature` was fitted and the expected calibration error before and after, per split."""
    digit_gate: dict[str, object] = field(default_factory=dict)
    """The "is this one handwritten digit?" gate (`app.gate`): feature names, their mean/std, logistic weights,
    bias and threshold, what it was fitted on and its rates on the threshold split; empty when none was fitted
    (the service then answers `is_digit: null`)."""
    int8: dict[str, object] = field(default_factory=dict)
    """The int8 convolutions' activation ranges (`mnist_model.quantized`: the largest ReLU output of each
    convolution) and which images measured them; empty when none were recorded (the service then runs float32
    where bf16 is not native)."""

    def to_safetensors(self) -> dict[str, str]:
        """Encode every field as a JSON string (safetensors metadata only holds strings)."""
        return {key: json.dumps(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_safetensors(cls, raw: dict[str, str] | None) -> ModelMetadata:
        """Decode metadata written by `to_safetensors`; unknown keys are ignored so newer files still load."""
        raw = raw or {}
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"architecture", "mean", "std"} - raw.keys()
        if missing:
            raise CheckpointError(f"checkpoint metadata lacks {sorted(missing)}: it was not written by mnist-serve")
        try:
            values = {key: json.loads(text) for key, text in raw.items() if key in known}
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint metadata is not valid JSON: {exc}") from exc
        temperature = values.get("temperature", 1.0)
        if not (isinstance(temperature, int | float) and 0 < temperature < float("inf")):
            raise CheckpointError(f"checkpoint temperature must be a positive number, got {temperature!r}")
        return cls(**values)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` (its return value is ignored) on a temporary file next to `path`, then rename it over `path`.

    A rename within one directory is atomic, so a reader (or a crash at any moment) sees either the old file or the
    complete new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; others (a container user) must read it
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def save_checkpoint(path: str | Path, model: torch.nn.Module, metadata: ModelMetadata) -> None:
    """Write the model's weights (moved to CPU, contiguous) and metadata to `path` atomically."""
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(serialize(tensors, metadata)))


def serialize(tensors: dict[str, torch.Tensor], metadata: ModelMetadata) -> bytes:
    """The safetensors file of `tensors` and `metadata`, byte for byte the same for the same content.

    Why not `safetensors.torch.save` alone: it writes the JSON header from a hash map whose order changes with
    every call, so rewriting a checkpoint with the same weights and metadata changed its bytes, and with them its
    SHA-256, which the service answers as `model.version`. Here the header's keys are sorted (the tensors' bytes
    and offsets are the library's, untouched) and the header padded with spaces to 8 bytes, as the format allows.
    """
    blob = save(tensors, metadata=metadata.to_safetensors())
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded = header.encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + blob[8 + size :]


def write_metadata(path: str | Path, metadata: ModelMetadata) -> None:
    """Replace a checkpoint's metadata, atomically, keeping its tensors exactly as stored (names, dtypes, bytes):
    for what is fitted after training (the digit gate), without a round trip through a model."""
    path = _existing(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is corrupt or truncated") from exc
    atomic_write(path, lambda tmp: tmp.write_bytes(serialize(tensors, metadata)))


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read only the metadata of a checkpoint (cheap: the header, not the weights)."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return ModelMetadata.from_safetensors(handle.metadata())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint ({exc}); retrain or re-download it"
        ) from exc


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Net, ModelMetadata]:
    """Load a checkpoint into a fresh `Net` in eval mode on `device`, checking architecture and tensor shapes."""
    path = _existing(path)
    metadata = read_metadata(path)
    if metadata.architecture != ARCHITECTURE:
        raise CheckpointError(f"{path} holds a '{metadata.architecture}' model, this code serves '{ARCHITECTURE}'")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is corrupt or truncated") from exc
    model = Net()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the network ({exc})") from exc
    return model.to(device).eval(), metadata


def checkpoint_version(path: str | Path) -> str:
    """The first 12 hex digits of the checkpoint file's SHA-256: names exactly which weights (and metadata) these
    are, as the service reports them (`model.version`) and as a fine-tuned checkpoint records where it started."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train one with `python -m training.run --output {path}` "
            "or point MNIST_SERVE_MODEL_PATH at an existing .safetensors file"
        )
    return path
