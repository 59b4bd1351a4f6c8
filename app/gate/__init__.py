"""The not-a-digit gate (issue 11): is an upload one handwritten digit? A small perceptron over the network's
penultimate pre-activations, its convolutional channels' means, a summary of its answer and the preprocessing cues,
fitted by `app.gate.fit` and stored in the checkpoint's `digit_gate` metadata.

- `features`: what the gate weighs, and how the fit and the service compute each.
- `digit_gate`: the gate's parameters, its score (the plain formula, and the served version: its first layer folded
  into rows fc1's matrix product computes, the rest in NumPy).
- `fitting`: the fit (class-balanced, deterministic) and the threshold choice (a false-flag budget per group).
- `fit`: the command that fits a checkpoint's gate on exported renders and MNIST and writes it back.
"""

from app.gate.digit_gate import GATE_OFF_NOTE, NO_GATE_NOTE, DigitGate, GateError, ServingGate, describe_gate
from app.gate.features import (
    CUE_FEATURES,
    FEATURE_NAMES,
    NETWORK_FEATURES,
    channel_means,
    cue_features,
    cue_row,
    network_features,
    stack_cue_rows,
    stack_cues,
)

__all__ = [
    "CUE_FEATURES",
    "FEATURE_NAMES",
    "NETWORK_FEATURES",
    "GATE_OFF_NOTE",
    "NO_GATE_NOTE",
    "DigitGate",
    "GateError",
    "cue_features",
    "cue_row",
    "describe_gate",
    "channel_means",
    "network_features",
    "ServingGate",
    "stack_cue_rows",
    "stack_cues",
]
