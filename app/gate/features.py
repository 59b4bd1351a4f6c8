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
import torch.nn.functional as F

from app.preprocess.cues import Cues

FC1_FEATURES = tuple(f"fc1_{index}" for index in range(128))
CONV_FEATURES = (*(f"conv_mean_{index}" for index in range(64)), *(f"conv_max_{index}" for index in range(64)))
NETWORK_FEATURES = (*FC1_FEATURES, *CONV_FEATURES, "max_probability", "energy")
"""fc1 after its ReLU (what the last layer classifies); the mean and the maximum of each of the 64 channels of the
convolutional block's output (`Net.conv_maps`: which strokes, corners and curves it found anywhere, before fc1
maps them onto the ten digits; with them the gate flags ~6 points more of the threshold split's non-digits,
letters 69 → 84 %); the calibrated top probability; the energy, logsumexp of the logits (large when the network
sees strong evidence for some digit, whatever the softmax says)."""
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


SAME_WIDTH_INTEGER = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}
"""For non-negative IEEE floats (sign bit 0) the bit patterns, read as signed integers of the same width, order
exactly as the values do: the maximum of the maps (ReLU outputs, never negative) is taken on that integer view,
~10× cheaper on CPU than torch's float max over the same channels-last half-precision data (12 instead of ~80 µs
per batch of 32; `app/gate` runs on every forward pass)."""


def channel_summaries(maps: torch.Tensor) -> torch.Tensor:
    """N×128 float32: the mean, then the maximum, of each of the 64 channels of `Net.conv_maps` output `maps`
    (N×64×12×12, any layout and float dtype).

    Call it right after `conv_maps`, before fc1 streams its 2.4 MB of weights through the cache: on the maps
    still in cache it costs ~45 µs per batch of 32 on one CPU thread, after fc1 ~175 µs (measured)."""
    means = F.avg_pool2d(maps, maps.shape[-2:]).flatten(1).float()  # several times cheaper than torch's mean here
    bits = maps.view(SAME_WIDTH_INTEGER[maps.dtype])  # ReLU output: non-negative, see SAME_WIDTH_INTEGER
    maxima = bits.permute(0, 2, 3, 1).reshape(len(maps), -1, maps.shape[1]).amax(dim=1).view(maps.dtype)
    return torch.cat([means, maxima.float()], dim=1)


def network_features(
    summaries: torch.Tensor, fc1: torch.Tensor, logits: torch.Tensor, probabilities: torch.Tensor
) -> np.ndarray:
    """N×258 float32: fc1's activations (N×128), the `channel_summaries` (N×128), the top calibrated probability
    (of `probabilities`, the N×10 softmax(logits / T) the predictor answers with anyway), logsumexp(logits).

    In numpy: on a batch of 32 its few small operations cost a fraction of torch's per-operation overhead (this
    runs on every forward pass of the service)."""
    z = logits.float().cpu().numpy().astype(np.float64)
    peak = z.max(axis=1, keepdims=True)
    energy = peak + np.log(np.exp(z - peak).sum(axis=1, keepdims=True))  # logsumexp(z), stably
    top = probabilities.float().cpu().numpy().max(axis=1, keepdims=True)
    network = [fc1.float().cpu().numpy(), summaries.cpu().numpy(), top, energy]
    return np.concatenate(network, axis=1, dtype=np.float32)


def cue_features(cues: Cues) -> list[float]:
    """One upload's cues as the gate's `CUE_FEATURES` (booleans 0/1); `MNIST_FORMAT_CUES` for an MNIST-format one."""
    if cues.mnist_format:
        return list(MNIST_FORMAT_CUES)
    return [float(getattr(cues, name)) for name in CUE_FEATURES]


def cue_matrix(cues: Sequence[Cues]) -> np.ndarray:
    """N×9 float64: `cue_features` of each upload."""
    return np.array([cue_features(item) for item in cues], dtype=np.float64).reshape(len(cues), len(CUE_FEATURES))
