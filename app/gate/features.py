"""The features the not-a-digit gate weighs, computed by the same functions when it is fitted and when it serves.

Two groups, because they come from two places on the hot path: the network's (its penultimate activations and a
summary of its answer, from the forward pass that classifies the image: no second pass) and the preprocessing
cues (`app.preprocess.Cues`: how many separate parts the ink had, its shape, holes, stroke width...). The gate is
linear, so its score is the sum of one term per group (`app.gate.digit_gate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from app.preprocess.cues import Cues

FC1_FEATURES = tuple(f"fc1_{index}" for index in range(128))
NETWORK_FEATURES = (*FC1_FEATURES, "max_probability", "energy")
"""fc1 after its ReLU (what the last layer classifies); the calibrated top probability; the energy, logsumexp of
the logits (large when the network sees strong evidence for some digit, whatever the softmax says)."""
CUE_FEATURES = (
    "parts",
    "dropped_ink",
    "aspect",
    "coverage",
    "stroke_width",
    "holes",
    "touches_edge",
    "mnist_format",
    "inverted",
)
"""The `Cues` fields, in this order (booleans as 0/1)."""
MNIST_FORMAT_CUES = tuple(1.0 if name in ("mnist_format", "inverted") else 0.0 for name in CUE_FEATURES)
"""What the gate sees of every MNIST-format upload's cues: constants, not measurements. Such an upload passes
preprocessing untouched in ~15 µs; measuring its ink (connected parts, holes) would cost about as much again and
cut serving throughput by a third (measured with `benchmarks.serve_throughput`), so the gate judges it by the
network's features alone (and the flag). Every other upload's cues come free from the steps it went through."""
FEATURE_NAMES = (*NETWORK_FEATURES, *CUE_FEATURES)


def network_features(fc1: torch.Tensor, logits: torch.Tensor, probabilities: torch.Tensor) -> np.ndarray:
    """N×130 float32: fc1's activations (N×128), the top calibrated probability (of `probabilities`, the N×10
    softmax(logits / T) the predictor answers with anyway), logsumexp(logits).

    In numpy: on a batch of 32 its few small operations cost a fraction of torch's per-operation overhead
    (this runs on every forward pass of the service)."""
    z = logits.float().cpu().numpy().astype(np.float64)
    peak = z.max(axis=1, keepdims=True)
    energy = peak + np.log(np.exp(z - peak).sum(axis=1, keepdims=True))  # logsumexp(z), stably
    top = probabilities.float().cpu().numpy().max(axis=1, keepdims=True)
    return np.concatenate([fc1.float().cpu().numpy(), top, energy], axis=1, dtype=np.float32)


def cue_features(cues: Cues) -> list[float]:
    """One upload's cues as the gate's `CUE_FEATURES` (booleans 0/1); `MNIST_FORMAT_CUES` for an MNIST-format one."""
    if cues.mnist_format:
        return list(MNIST_FORMAT_CUES)
    return [float(getattr(cues, name)) for name in CUE_FEATURES]


def cue_matrix(cues: Sequence[Cues]) -> np.ndarray:
    """N×9 float64: `cue_features` of each upload."""
    return np.array([cue_features(item) for item in cues], dtype=np.float64).reshape(len(cues), len(CUE_FEATURES))
