"""The features the not-a-digit gate weighs: what each is, and how the fit and the service compute them.

Three groups, from three places on the hot path, all from the forward pass that classifies the image (no second
pass): the network's own (fc1's pre-activations and each convolutional channel's mean), two summaries of its answer
(`mnist_model.head`), and the preprocessing cues (`app.preprocess.Cues`: how many separate parts the ink had, its
shape, holes, stroke width...). The fit reads the features themselves (`network_features`); the service gets the
gate's first layer over the channel means from a few extra rows of fc1's matrix product instead
(`channel_mean_rows`, `digit_gate.ServingGate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from app.preprocess.cues import Cues

FC1_FEATURES = tuple(f"fc1_pre_{index}" for index in range(128))
CONV_FEATURES = tuple(f"conv_mean_{index}" for index in range(64))
ANSWER_FEATURES = ("max_probability", "energy")
NETWORK_FEATURES = (*FC1_FEATURES, *CONV_FEATURES, *ANSWER_FEATURES)
"""fc1's pre-activations, before its ReLU (what the service reads out of fc1's product; as telling as the
activations after the ReLU: 94.8 against 94.9 % of the threshold split's non-digits flagged in one-off fits); the mean
of each of the 64 channels of the convolutional block's output (`Net.conv_maps`: which strokes, corners and curves
it found anywhere, before fc1 maps them onto the ten digits; with them the gate flags ~5 points more of the
threshold split's non-digits, letters 78 → 88 %); the calibrated top probability; the energy, logsumexp of the
logits (large when the network sees strong evidence for some digit, whatever the softmax says). The channels'
maxima were weighed too until they were found to cost ~100 µs of a gated batch of 64 for ~0.4 points of
non-digits flagged (docs/gate.md, "Why these inputs")."""
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
    dtype): N×64 in the maps' dtype. What the fit reads; the service gets the gate's use of them from fc1's matrix
    product instead (`channel_mean_rows`)."""
    return F.avg_pool2d(maps, maps.shape[-2:]).flatten(1)


def channel_mean_rows(channels: int, columns: int) -> np.ndarray:
    """The `channel_means` as rows over the maps flattened in NCHW order (fc1's column order): C×`columns` float64,
    row c holding 1 / S² over channel c's block of S² columns, so that means = rows @ maps."""
    area = columns // channels
    return np.kron(np.eye(channels), np.full((1, area), 1.0 / area))


def network_features(
    pre_activations: np.ndarray, means: np.ndarray, max_probability: np.ndarray, energy: np.ndarray
) -> np.ndarray:
    """N×194 float32 in `NETWORK_FEATURES` order: fc1's pre-activations (N×128), the `channel_means` (N×64), the
    top calibrated probability and the energy (N×1 each, `mnist_model.head.Answer`)."""
    return np.concatenate([pre_activations, means, max_probability, energy], axis=1, dtype=np.float32)


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


def stack_cue_rows(rows: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """`stack_cues` of one `cue_row` per upload (None: an MNIST-format one)."""
    return stack_cues([(None if row is None else row[None], 1) for row in rows])
