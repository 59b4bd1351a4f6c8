"""Resumable training state, saved every epoch next to the checkpoint and read back with `weights_only=True`.

Only tensors, numbers, strings, lists and dicts go in, so `torch.load(..., weights_only=True)` can read it without
unpickling arbitrary objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mnist_model.checkpoint import atomic_write


class StateError(RuntimeError):
    """The training state cannot be resumed (missing, corrupt, or from a different configuration)."""


def state_path_for(checkpoint: str | Path) -> Path:
    """`models/mnist_cnn.safetensors` → `models/mnist_cnn.state.pt`."""
    return Path(checkpoint).with_suffix(".state.pt")


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a kill at any moment leaves the previous epoch's state intact."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by `save_state`; corrupt or foreign files raise `StateError` with what to do."""
    if not path.is_file():
        raise StateError(f"--resume: no training state at {path}; start without --resume to train from scratch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle stream
        raise StateError(f"--resume: {path} is corrupt or not a training state ({exc}); delete it to restart") from exc
    if not isinstance(state, dict) or "epoch" not in state or "model" not in state:
        raise StateError(f"--resume: {path} is not an mnist-serve training state; delete it to restart")
    return state


def check_compatible(saved_config: dict[str, Any], config: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Refuse to resume when a setting that shapes the run (schedule, data, seed) differs from the saved run's."""
    changed = [
        f"--{k.replace('_', '-')} was {saved_config.get(k)!r}, now {config.get(k)!r}"
        for k in keys
        if saved_config.get(k) != config.get(k)
    ]
    if changed:
        raise StateError("--resume: the interrupted run used other settings: " + "; ".join(changed))
