"""Device strings, parsed and resolved in one place for training (`--device`) and serving (`MNIST_SERVE_DEVICE`).

Accepted: `auto` (a CUDA GPU when torch sees one, else the CPU), `cpu`, `cuda` (this process's GPU: under torchrun
the one at LOCAL_RANK, wrapping around when there are more processes than GPUs) and `cuda:N`. Apple's `mps` is
refused with a pointer to `cpu`: nothing here is tested on it, and serving stages its batches on the CPU.
"""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
"""The accepted forms, as help texts and error messages spell them."""

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?", re.ASCII)


class DeviceError(RuntimeError):
    """A well-formed device that this machine does not have; the message says what to use instead."""


def parse_device(name: str) -> str:
    """Check a device string's form without looking at the hardware; return it trimmed and lower-cased.

    Settings validation calls this at start-up, before any GPU is touched. Raises `ValueError` listing the forms.
    """
    value = name.strip().lower()
    if _DEVICE.fullmatch(value):
        return value
    if value.startswith("mps"):
        raise ValueError(f"{name!r}: Apple's mps is not supported here; use cpu")
    raise ValueError(f"{name!r} is not a device: use {DEVICE_CHOICES}")


def resolve_device(name: str, local_rank: int = 0, *, setting: str = "device") -> torch.device:
    """The `torch.device` that `name` means on this machine, for the process at `local_rank` on its node.

    `auto` and `cuda` pick GPU `local_rank % GPUs`, so torchrun's processes spread over the node's GPUs; an
    explicit `cuda:N` is taken as given. `setting` (e.g. `--device`, `MNIST_SERVE_DEVICE`) names what the user
    set, so that errors say what to change. Raises `ValueError` (malformed) or `DeviceError` (absent hardware).
    """
    value = parse_device(name)
    if value == "cpu" or (value == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"{setting}={value} asks for a CUDA GPU, but torch sees none: use {setting}=cpu or auto")
    count = torch.cuda.device_count()
    if value in {"auto", "cuda"}:
        return torch.device("cuda", local_rank % count)
    index = int(value.removeprefix("cuda:"))
    if index >= count:
        raise DeviceError(
            f"{setting}={value}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
            f"use one of those or {setting}=cuda"
        )
    return torch.device("cuda", index)
