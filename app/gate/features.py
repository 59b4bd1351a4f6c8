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
CONV_FEATURES = tuple(f"conv_mean_{index}" for index in range(64))
NETWORK_FEATURES = (*FC1_FEATURES, *CONV_FEATURES, "max_probability", "energy")
"""fc1 after its ReLU (what the last layer classifies); the mean of each of the 64 channels of the convolutional
block's output (`Net.conv_maps`: which strokes, corners and curves it found anywhere, before fc1 maps them onto the
ten digits; with them the gate flags ~5 points more of the threshold split's non-digits, letters 78 → 88 %); the
calibrated top probability; the energy, logsumexp of the logits (large when the network sees strong evidence for
some digit, whatever the softmax says). The channels' maxima were weighed too until they were found to cost ~100 µs
of a gated batch of 64 (~40 % of the gate's cost) for ~0.4 points of non-digits flagged (README, "Is it a
digit?")."""
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


def channel_means(maps: torch.Tensor) -> torch.Tensor:
    """The mean of each of the 64 channels of `Net.conv_maps` output `maps` (N×64×12×12, any layout and float
    dtype): N×64 in the maps' dtype.

    Call it right after `conv_maps`, before fc1 streams its 2.4 MB of weights through the cache: there it takes
    ~100 µs for a batch of 64 on one CPU thread (one-off timing); after fc1 it took about four times as long (an
    earlier measurement). `avg_pool2d` over the whole map is several times cheaper here than torch's `mean` or a
    matrix product with a column of ones."""
    return F.avg_pool2d(maps, maps.shape[-2:]).flatten(1)


def network_features(
    means: torch.Tensor,
    fc1: torch.Tensor,
    logits: torch.Tensor,
    log_probabilities: torch.Tensor,
    probabilities: torch.Tensor,
) -> torch.Tensor:
    """N×194 float32 on the network's device, in `NETWORK_FEATURES` order: fc1's activations (N×128), the
    `channel_means` (N×64), the top calibrated probability (of `probabilities`, the N×10
    softmax(logits / T) the predictor answers with anyway), the energy logsumexp(logits).

    The energy is read off what the predictor computed anyway: log_softmax(z) = z − logsumexp(z) for every
    class, so logsumexp(z) = max z − max log_softmax(z), from `log_probabilities` (float32, N×10), exact up to
    their rounding (~1e-6 here). Few operations on purpose: right after a forward pass each distinct tensor
    operation costs tens of µs on a CPU (its code and data left the caches; torch's logsumexp took ~65 µs per
    batch of 32 there, these two maxima ~20 µs), far more than its arithmetic, so the serving gate's share of a
    batch is mostly its operation count."""
    energy = logits.amax(dim=1, keepdim=True).float() - log_probabilities.amax(dim=1, keepdim=True)
    top = probabilities.amax(dim=1, keepdim=True)
    return torch.cat([fc1, means, top, energy], dim=1).float()  # cat promotes the half-precision parts


def cue_features(cues: Cues) -> list[float]:
    """One upload's cues as the gate's `CUE_FEATURES` (booleans 0/1); `MNIST_FORMAT_CUES` for an MNIST-format one."""
    if cues.mnist_format:
        return list(MNIST_FORMAT_CUES)
    return [float(getattr(cues, name)) for name in CUE_FEATURES]


def cue_matrix(cues: Sequence[Cues]) -> np.ndarray:
    """N×9 float64: `cue_features` of each upload."""
    return np.array([cue_features(item) for item in cues], dtype=np.float64).reshape(len(cues), len(CUE_FEATURES))


def cue_row(cues: Cues) -> np.ndarray | None:
    """What the service hands the predictor for one upload: its `cue_features` as a float32 row, or None for an
    MNIST-format upload (the gate knows its constant cues)."""
    return None if cues.mnist_format else np.asarray(cue_features(cues), dtype=np.float32)


def stack_cues(blocks: Sequence[tuple[np.ndarray | None, int]]) -> np.ndarray | None:
    """One N×9 float32 cue matrix from blocks of (n×9 rows, n), where a block of None stands for n MNIST-format
    uploads; None when every block is (nothing to stack: the predictor's fast path)."""
    if all(rows is None for rows, _ in blocks):
        return None
    constant = np.asarray(MNIST_FORMAT_CUES, np.float32)
    filled = [np.broadcast_to(constant, (count, len(constant))) if rows is None else rows for rows, count in blocks]
    return np.concatenate(filled, axis=0, dtype=np.float32)
