"""The not-a-digit gate at serving time: a one-hidden-layer perceptron over standardised features, read from the
checkpoint's `digit_gate` metadata.

    score = w2 · relu(W1ᵀ (x − mean) / std + b1) + b2;  `is_digit` = score ≥ threshold

Why a small MLP and not a logistic regression: on the threshold split it flagged 88.9 % of non-digits against
67.4 % for the logistic regression at the same false-flag budgets (see README, "Is it a digit?").

The first layer is linear, so its pre-activations split into a network term (fc1 and the answer summary,
computed batched by the predictor beside the forward pass: `network_term`) and a cue term (`finish`, per request,
by the service). An MNIST-format upload's cues are constants (`features.MNIST_FORMAT_CUES`), so the predictor
finishes its score itself and the service only compares a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from app.gate.features import FEATURE_NAMES, MNIST_FORMAT_CUES, NETWORK_FEATURES, cue_features
from app.preprocess.cues import CueNotes

NO_GATE_NOTE = (
    "this checkpoint has no digit gate: `is_digit` is null in every answer; fit one with "
    "`python -m app.gate.fit --checkpoint PATH ...` (see README, 'Is it a digit?')"
)
PROBABILITIES = 10
PARAMETERS = ("mean", "std", "hidden_weights", "hidden_bias", "output_weights")
"""The array parameters of `digit_gate` (with `features`, `output_bias`, `threshold`)."""


GATE_OFF_NOTE = "the digit gate is switched off (MNIST_SERVE_DIGIT_GATE=false): `is_digit` is null in every answer"


def describe_gate(gate: DigitGate | None, *, switched_off: bool = False) -> dict[str, object]:
    """The `digit_gate` entry GET /model shows: the gate's summary, or a note saying why there is none."""
    if gate is not None:
        return gate.describe()
    return {"note": GATE_OFF_NOTE if switched_off else NO_GATE_NOTE}


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
        # Standardising folded into the first layer: Wᵀ (x − m) / s + b = (W / s)ᵀ x + (b − (m / s)ᵀ W).
        scaled = self.hidden_weights / self.std[:, None]
        cut = len(NETWORK_FEATURES)
        folded_bias = self.hidden_bias - (self.mean / self.std) @ self.hidden_weights
        object.__setattr__(self, "_network", scaled[:cut].astype(np.float32))
        object.__setattr__(self, "_network_bias", folded_bias.astype(np.float32))
        object.__setattr__(self, "_cues", scaled[cut:])

    @property
    def hidden(self) -> int:
        return len(self.hidden_bias)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Scores of N×F feature rows (`FEATURE_NAMES` order), float64: the plain formula, for fitting and
        benchmarks (serving computes the same in two parts: `network_term`, then `finish`)."""
        hidden = np.maximum(((features - self.mean) / self.std) @ self.hidden_weights + self.hidden_bias, 0.0)
        return hidden @ self.output_weights + self.output_bias

    def network_term(self, features: np.ndarray) -> np.ndarray:
        """The first layer's pre-activations from N×258 `network_features` alone (N×H float32, bias included)."""
        network: np.ndarray = self._network  # type: ignore[attr-defined]
        bias: np.ndarray = self._network_bias  # type: ignore[attr-defined]
        return features @ network + bias

    def finish(self, network_term: np.ndarray, cue_features: np.ndarray) -> np.ndarray:
        """Scores from `network_term` rows (N×H) and the uploads' `cue_features` (N×9), float64."""
        cues: np.ndarray = self._cues  # type: ignore[attr-defined]
        hidden = np.maximum(np.asarray(network_term, np.float64) + np.asarray(cue_features) @ cues, 0.0)
        return hidden @ self.output_weights + self.output_bias

    # --- serving: the predictor's rows and the service's verdicts ------------------------------------------
    # A row (one per image, float32): 10 probabilities | the score if the upload was MNIST-format | the network
    # term (H values).

    @property
    def row_width(self) -> int:
        return PROBABILITIES + 1 + self.hidden

    def rows(self, probabilities: torch.Tensor, features: np.ndarray) -> torch.Tensor:
        """The predictor's answer with the gate: N×`row_width` float32 on the CPU, from calibrated probabilities
        (N×10 float32) and `network_features` (N×258)."""
        term = self.network_term(features)
        if_mnist_format = self.finish(term, np.asarray(MNIST_FORMAT_CUES)[None])
        columns = [probabilities.cpu().numpy(), if_mnist_format[:, None], term]
        return torch.from_numpy(np.concatenate(columns, axis=1, dtype=np.float32))

    def verdicts(self, rows: list[list[float]], uploads: list[tuple[np.ndarray, CueNotes]]) -> list[bool]:
        """`is_digit` of each image from its row and its upload (28×28 pixels and the notes its preprocessing
        took: untouched for an MNIST-format upload, whose score the row already holds)."""
        verdicts: list[bool | None] = [
            row[PROBABILITIES] >= self.threshold if notes.parts is None else None
            for row, (_, notes) in zip(rows, uploads, strict=True)
        ]
        rest = [index for index, verdict in enumerate(verdicts) if verdict is None]
        if rest:
            terms = np.array([rows[index][PROBABILITIES + 1 :] for index in rest])
            cues = np.array([cue_features(uploads[index][1].cues(uploads[index][0])) for index in rest])
            for index, score in zip(rest, self.finish(terms, cues), strict=True):
                verdicts[index] = bool(score >= self.threshold)
        return verdicts  # type: ignore[return-value]  # every None was replaced

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
