"""Helpers the test modules import: paths, sample uploads, the tutorial network. Fixtures live in conftest.py.

(Running a real server is `app.testing.running_server`, shared with the benchmarks.)
"""

from __future__ import annotations

import io
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.data import RAW_FILES

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CHECKPOINT = REPO / "models" / "mnist_cnn.safetensors"


def shared_mnist_raw() -> Path | None:
    """The canonical MNIST .gz files: $MNIST_RAW_DIR, else ../shared/data/mnist/MNIST/raw next to the repo."""
    candidates = [os.environ.get("MNIST_RAW_DIR"), REPO.parent / "shared/data/mnist/MNIST/raw", REPO / "data/MNIST/raw"]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in RAW_FILES):
            return Path(candidate)
    return None


def native_bf16_cpu() -> bool:
    """Whether this x86 CPU computes bf16 in hardware, by the flags the Linux kernel lists in /proc/cpuinfo (no
    torch involved: the tests' own oracle): AVX512-BF16 or AMX-BF16; plain AVX-512 (Skylake, Cascade Lake, Ice Lake)
    only emulates it. Skips the test where that cannot be read: not x86, no /proc/cpuinfo, no flags listed."""
    import pytest

    if platform.machine() not in {"x86_64", "AMD64"}:
        pytest.skip("reads x86 CPU flags")
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        pytest.skip("/proc/cpuinfo is not readable here")
    flags = next((set(line.partition(":")[2].split()) for line in lines if line.startswith("flags")), set())
    if not flags:
        pytest.skip("/proc/cpuinfo lists no CPU flags here")
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def digit_png(size: int = 64) -> bytes:
    """A hand-drawn-looking 7 (black stroke on white, size×size PNG): a valid upload for plumbing tests."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line([(size // 4, size // 4), (3 * size // 4, size // 4), (size // 3, 7 * size // 8)], 0, 5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TutorialNet(nn.Module):
    """Verbatim copy of pytorch/examples mnist/main.py's Net: our checkpoints must load into it unchanged."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@dataclass(frozen=True)
class Digit:
    """One MNIST test image, with its label and its bytes in the formats a client would send (tests/e2e)."""

    index: int
    label: int
    png: bytes
    jpeg: bytes


RUN_OUTPUTS = frozenset(
    {"m.safetensors", "m.state.pt", "m.history.json", "README.md"}
    | {f"m.{plot}.png" for plot in ("curves", "confusion", "reliability")}
)
"""Every file a finished `training.run --output DIR/m.safetensors` leaves in DIR (nothing temporary)."""
