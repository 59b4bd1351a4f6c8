"""The not-a-digit gate at serving time: a one-hidden-layer perceptron over standardised features, read from the
checkpoint's `digit_gate` metadata.

    score = w2 · relu(W1ᵀ (x − mean) / std + b1) + b2;  `is_digit` = score ≥ threshold

Why a small MLP and not a logistic regression: on the threshold split it flagged 88.9 % of non-digits against
67.4 % for the logistic regression at the same false-flag budgets (docs/gate.md, "Why these inputs").

At serving time the whole score is computed by the predictor, batched, in the forward pass (`DigitGate.serving`:
the standardising folded into the first layer, its part over the channel means into a few rows fc1's matrix
product computes too, then a few NumPy operations on the CPU); the cues come with the images (measured where each
upload was preprocessed), and an MNIST-format upload's are constants (`features.MNIST_FORMAT_CUES`), folded into a
bias of their own. The service only compares a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from app.gate.features import (
    CONV_FEATURES,
    FC1_FEATURES,
    FEATURE_NAMES,
    MNIST_FORMAT_CUES,
    NETWORK_FEATURES,
    channel_mean_rows,
)
from mnist_model.head import Answer

NO_GATE_NOTE = (
    "this checkpoint has no digit gate: `is_digit` is null in every answer; fit one with "
    "`python -m app.gate.fit --checkpoint PATH ...` (see README, 'Is it a digit?')"
)
PARAMETERS = ("mean", "std", "hidden_weights", "hidden_bias", "output_weights")
"""The array parameters of `digit_gate` (with `features`, `output_bias`, `threshold`)."""


GATE_OFF_NOTE = "the digit gate is switched off (MNIST_SERVE_DIGIT_GATE=false): `is_digit` is null in every answer"


def describe_gate(gate: DigitGate | None, *, switched_off: bool = False) -> dict[str, object]:
    """The `digit_gate` entry GET /model shows: the gate's summary, or a note saying why there is none."""
    if gate is not None:
        return gate.describe()
    return {"note": GATE_OFF_NOTE if switched_off else NO_GATE_NOTE}


RANK_TOLERANCE = 1e-6
"""Singular values of the channel means' block below this share of the largest are taken as zero (`serving`)."""


@dataclass(frozen=True, eq=False)
class ServingGate:
    """`DigitGate.serving(channels, columns)`: the score as the predictor computes it. Compared by identity: it
    holds arrays.

    The first layer's term over the 64 channel means, standardising included, is a linear function of the
    convolutional maps of rank R ≤ 64: factored into R rows over the maps (`readout_rows`) and R×H weights
    (`component_weights`). The rows are appended to fc1's weight (`mnist_model.inference.InferenceNet`), so the
    network's matrix product computes them beside fc1 and the gate needs no operation on the device of its own. A
    gate fitted with `--mean-components 16` has R = 16: 16 more rows, 12.5 % more of fc1's weight to stream. The
    rest is float32 NumPy on the CPU, a few operations on N×H arrays: fc1's term (its pre-activations are read out
    anyway), the components', the answer's and the cues' terms, the ReLU, the output layer."""

    readout_rows: torch.Tensor  # R×(C·S·S) float64, columns in fc1's (NCHW) order
    fc1_weights: np.ndarray  # 128×H
    component_weights: np.ndarray  # R×H
    answer_weights: np.ndarray  # 2×H: max_probability, energy
    cue_weights: np.ndarray  # 9×H
    bias: np.ndarray  # H
    mnist_format_bias: np.ndarray  # H: `bias` plus the cue term of `MNIST_FORMAT_CUES`
    output_weights: np.ndarray  # H
    output_bias: np.float32

    def scores(self, readouts: np.ndarray, answer: Answer, cues: np.ndarray | None) -> np.ndarray:
        """N float32 scores from `readouts` (N×(128 + R) float32: fc1's pre-activations, then the `readout_rows`
        applied to the maps), the head's `answer` and the cue matrix (N×9 `CUE_FEATURES`; None: every upload
        MNIST-format)."""
        fc1 = len(self.fc1_weights)
        hidden = readouts[:, :fc1] @ self.fc1_weights
        hidden += readouts[:, fc1:] @ self.component_weights
        hidden += answer.max_probability * self.answer_weights[0]
        hidden += answer.energy * self.answer_weights[1]
        if cues is None:
            hidden += self.mnist_format_bias
        else:
            hidden += cues @ self.cue_weights
            hidden += self.bias
        np.maximum(hidden, 0.0, out=hidden)
        return hidden @ self.output_weights + self.output_bias


class GateError(ValueError):
    """The checkpoint's `digit_gate` metadata is malformed (names, sizes, non-finite values)."""


@dataclass(frozen=True, eq=False)
class DigitGate:
    """Parameters of the gate: what `digit_gate` in the checkpoint metadata holds (plus its record)."""

    mean: np.ndarray  # F
    std: np.ndarray  # F, positive
    hidden_weights: np.ndarray  # F×H
    hidden_bias: np.ndarray  # H
    output_weights: np.ndarray  # H
    output_bias: float
    threshold: float
    """Score below which an upload is flagged `is_digit: false`."""
    record: dict[str, object] = field(default_factory=dict)
    """How it was fitted (data, counts, rates on the threshold split): reported by GET /model, not used here."""

    def __post_init__(self) -> None:
        size, hidden = len(FEATURE_NAMES), len(self.hidden_bias)
        shapes = {"mean": (size,), "std": (size,), "hidden_weights": (size, hidden), "output_weights": (hidden,)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value.shape != shape or not np.isfinite(value).all():
                raise GateError(f"digit_gate {name} must be {shape} finite numbers, got shape {value.shape}")
        finite = np.isfinite([self.output_bias, self.threshold]).all() and np.isfinite(self.hidden_bias).all()
        if not (self.std > 0).all() or not finite:
            raise GateError("digit_gate std must be positive, biases and threshold finite")

    @property
    def hidden(self) -> int:
        return len(self.hidden_bias)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Scores of N×F feature rows (`FEATURE_NAMES` order), float64: the plain formula, for fitting (serving
        computes the same function otherwise arranged, in the network's precision: `serving`)."""
        hidden = np.maximum(((features - self.mean) / self.std) @ self.hidden_weights + self.hidden_bias, 0.0)
        return hidden @ self.output_weights + self.output_bias

    def serving(self, channels: int, columns: int) -> ServingGate:
        """The gate as the predictor runs it, for maps of `channels` channels that fc1 reads as `columns` values.
        Standardising folded into the first layer, Wᵀ (x − m) / s + b = (W / s)ᵀ x + (b − (m / s)ᵀ W); the
        channel means' block of W / s (64×H) factored by its singular value decomposition U·Σ·Vᵀ, rank R, into R
        rows over the maps, (U·Σ)ᵀ·(channel mean rows), and the R×H weights Vᵀ that the read-outs meet on the CPU
        (exact up to float rounding: the singular values dropped are below `RANK_TOLERANCE` of the largest)."""
        scaled = self.hidden_weights / self.std[:, None]
        bias = self.hidden_bias - (self.mean / self.std) @ self.hidden_weights
        fc1, network = len(FC1_FEATURES), len(NETWORK_FEATURES)
        means_block = scaled[fc1 : fc1 + len(CONV_FEATURES)]
        left, singular, right = np.linalg.svd(means_block, full_matrices=False)
        rank = max(1, int((singular > RANK_TOLERANCE * singular[0]).sum()))  # ≥ 1 row, even for a zero block
        rows = (left[:, :rank] * singular[:rank]).T @ channel_mean_rows(channels, columns)

        def array(values: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(values, dtype=np.float32)

        return ServingGate(
            readout_rows=torch.from_numpy(rows),
            fc1_weights=array(scaled[:fc1]),
            component_weights=array(right[:rank]),
            answer_weights=array(scaled[fc1 + len(CONV_FEATURES) : network]),
            cue_weights=array(scaled[network:]),
            bias=array(bias),
            mnist_format_bias=array(bias + np.asarray(MNIST_FORMAT_CUES) @ scaled[network:]),
            output_weights=array(self.output_weights),
            output_bias=np.float32(self.output_bias),
        )

    def describe(self) -> dict[str, object]:
        """For GET /model: size, threshold and how it was fitted (not the weights: thousands of numbers)."""
        return {"features": len(FEATURE_NAMES), "hidden": self.hidden, "threshold": self.threshold, **self.record}

    def to_metadata(self) -> dict[str, object]:
        """The `digit_gate` entry of the checkpoint metadata (JSON-ready)."""
        arrays = {name: getattr(self, name).tolist() for name in PARAMETERS}
        numbers = {"output_bias": self.output_bias, "threshold": self.threshold}
        return {"features": list(FEATURE_NAMES), **arrays, **numbers, **self.record}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, object]) -> DigitGate | None:
        """The gate in a checkpoint's `digit_gate` entry; None when the entry is empty (no gate fitted).

        Raises `GateError` when it is there but unusable: features other than this code computes (a gate fitted
        by another version), wrong sizes, non-finite numbers."""
        if not entry:
            return None
        names = entry.get("features")
        if names != list(FEATURE_NAMES):
            raise GateError(
                "digit_gate was fitted on other features than this code computes "
                f"({len(names) if isinstance(names, list) else names!r} names); refit it with app.gate.fit"
            )
        try:
            arrays = {name: np.asarray(entry[name], dtype=np.float64) for name in PARAMETERS}
            bias, threshold = float(entry["output_bias"]), float(entry["threshold"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise GateError(f"digit_gate is incomplete or not numeric: {exc}") from exc
        known = {"features", "output_bias", "threshold", *PARAMETERS}
        record = {key: value for key, value in entry.items() if key not in known}
        return cls(output_bias=bias, threshold=threshold, record=record, **arrays)
