"""The network's last steps for serving, fc1's ReLU → fc2 → log_softmax → temperature, in float32 numpy on the
CPU, and the two summaries of the answer the not-a-digit gate reads off it on the way.

Why numpy: after the convolutions and fc1, each further torch operation on a CPU costs tens of microseconds
whatever its size, because its code and data have left the caches (a batch of 64, one thread, the caches disturbed
between batches as a server's request handling disturbs them: fc1's ReLU ~50 µs, fc2 on 64×128 ~140 µs,
log_softmax and the temperature ~45 µs each). The same steps on numpy arrays of that size cost a few µs each
(the whole tail ~220 against ~320 µs in that measurement), so the gate's two summaries, here almost free,
no longer cost a tensor operation each. On a GPU only fc1's pre-activations come back to the host, as small as
the answers were.

fc2 runs in float32 with the checkpoint's float32 weights whatever precision the rest runs in: the same
function, rounded less than in half precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn


@dataclass(frozen=True, eq=False)
class Answer:
    """The head's output for N images (float32 arrays; compared by identity: it holds arrays)."""

    probabilities: np.ndarray  # N×10, calibrated: softmax(logits / T)
    max_probability: np.ndarray  # N×1, the largest of each row of `probabilities`
    energy: np.ndarray  # N×1, logsumexp of the logits: large when the network sees strong evidence for a digit


class CalibratedHead:
    """fc1's pre-activations (N×128) → calibrated probabilities, as `Net` then temperature scaling compute them:
    softmax(log_softmax(fc2(relu(x))) / T) = softmax(fc2(relu(x)) / T)."""

    def __init__(self, fc2: nn.Linear, temperature: float) -> None:
        """`fc2` as the checkpoint holds it (float32; copied), `temperature` the checkpoint's T > 0."""
        self.weight = fc2.weight.detach().float().cpu().numpy().T.copy()  # 128×10: x @ weight
        self.bias = fc2.bias.detach().float().cpu().numpy().copy()
        self.inverse_temperature = np.float32(1.0 / temperature)

    def __call__(self, pre_activations: np.ndarray) -> Answer:
        """`pre_activations`: N×128 float32 (any strides; left as they are: the digit gate reads them too)."""
        hidden = np.maximum(pre_activations, 0.0)
        logits = hidden @ self.weight
        logits += self.bias
        largest = logits.max(axis=1, keepdims=True)
        logits -= largest  # shifted: each row's largest is 0, so no exp below overflows
        energy = largest + np.log(np.exp(logits).sum(axis=1, keepdims=True))
        # softmax is unchanged by a shift: softmax(log_softmax(z) / T) = softmax((z − max z) / T)
        weights = np.exp(logits * self.inverse_temperature)
        total = weights.sum(axis=1, keepdims=True)  # ≥ 1: the largest weight is exp(0)
        return Answer(weights / total, 1.0 / total, energy)
