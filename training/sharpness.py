"""Sharpness-aware minimisation (SAM, Foret et al. 2021): each step's gradient taken at the worst nearby weights.

Plain training follows the gradient at the current weights, and may settle in a narrow minimum whose loss rises
steeply a short way off: the test images, drawn apart from the training ones, sit a short way off. SAM first moves
the weights up the gradient by a fixed distance rho (to first order the highest loss within rho), takes the gradient
there, moves back and lets the optimiser step with that gradient: it prefers minima that stay low all round. It costs
a second forward and backward pass per step. `training.loop.train_epoch` uses it when `--sam-rho` is above 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch

NOT_WITH_FP16 = (
    "--sam-rho needs bf16 or float32 training (fp16's loss scaling is not applied to its detour): "
    "use --amp bf16 or --amp off"
)
"""Why sharpness-aware steps refuse fp16: said by the flags' check (`--amp fp16`) and by the training setup (`--amp
auto` on a GPU without bf16), whichever finds it first."""


@contextlib.contextmanager
def sharpness_ascent(parameters: Iterable[torch.nn.Parameter], rho: float) -> Iterator[None]:
    """Within the block, each parameter with a gradient is moved by rho · grad / ‖grad‖ (the norm over all of them
    at once); afterwards its saved weights are copied back, bit for bit, so the step that follows starts from exactly
    the weights it would have without the detour (a subtraction would leave rounding behind)."""
    moved = [(parameter, parameter.grad) for parameter in parameters if parameter.grad is not None]
    saved = [parameter.detach().clone() for parameter, _ in moved]
    with torch.no_grad():
        if moved:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grad.float()) for _, grad in moved]))
            scale = rho / (norm + 1e-12)
            for parameter, grad in moved:
                parameter.add_(grad * scale.to(parameter.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for (parameter, _), weights in zip(moved, saved, strict=True):
                parameter.copy_(weights)
