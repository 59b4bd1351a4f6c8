"""The optimisation recipe's fixed parts: the optimiser, the learning-rate schedule and the mixed-precision choice.

Shared by `training.run` and the training benchmark (`benchmarks/train_throughput.py`), so both train the same way.
"""

from __future__ import annotations

import torch

from mnist_model.hardware import native_bf16

OPTIMIZER = torch.optim.AdamW
ONE_CYCLE_WARMUP = 0.2
"""Share of the steps spent warming up to the peak learning rate."""


def build_scheduler(
    optimizer: torch.optim.Optimizer, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle: warm up for the first 20 % of steps, then anneal; constant LR for runs too short to have phases."""
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    pct_start = min(0.5, max(ONE_CYCLE_WARMUP, 2 / total_steps))  # each phase needs at least two steps
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct_start)


def pick_amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """Resolve --amp: bf16 where the hardware computes it natively (its range needs no loss scaling)."""
    if choice == "off":
        return None
    if choice == "fp16":
        if device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or off on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if choice == "bf16" or native_bf16(device) else torch.float16
    return torch.bfloat16 if choice == "bf16" or native_bf16(device) else None
