"""Temperature scaling and calibration error: one definition for training (fit, report), serving (apply) and
benchmarks (measure).

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the logits by one scalar
T > 0 fitted to minimise the negative log-likelihood on held-out data: T > 1 softens over-confident answers, T < 1
sharpens under-confident ones, and the predicted digit never changes. The network ends in log_softmax, and
softmax(log_softmax(z) / T) = softmax(z / T), so T applies to its log-probabilities directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ECE_BINS = 15
"""Equal-width confidence bins for the expected calibration error, as in Guo et al. 2017."""


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Calibrated probabilities: softmax(logits / T) over the last dimension (logits or log-probabilities)."""
    return torch.softmax(logits / temperature, dim=-1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 that minimises the mean NLL of softmax(logits / T) on (logits, labels); N×C logits, N labels.

    Optimises log T (so T stays positive) with L-BFGS in float64. The NLL is convex in 1/T, so the minimum is
    unique; T is capped to [0.01, 100], beyond which the data say only "far sharper" or "far flatter".
    """
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need N×C logits and N labels with N > 0, got {tuple(logits.shape)} and {len(labels)}")
    logits, labels = logits.detach().double().cpu(), labels.detach().long().cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.01, 100.0))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin (equal width over [0, 1]): how many answers, their mean confidence, and how many were right.

    Bin b holds confidences in (b / bins, (b + 1) / bins]; a confidence of exactly 0 goes to the first bin.
    """

    counts: torch.Tensor  # bins, int64
    confidence: torch.Tensor  # bins, float64: mean top probability (0 where empty)
    accuracy: torch.Tensor  # bins, float64: share answered right (0 where empty)

    @property
    def expected_calibration_error(self) -> float:
        """Σ_b (n_b / N) · |accuracy_b − confidence_b|."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        return float((self.counts.double() / total * (self.accuracy - self.confidence).abs()).sum())


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> Reliability:
    """Bin the top probability of each row of N×C `probabilities` and compare it with how often it was right."""
    probabilities, labels = probabilities.detach().double().cpu(), labels.detach().long().cpu()
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    index = (confidence * bins).ceil().long().sub(1).clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    safe = counts.clamp(min=1).double()
    return Reliability(
        counts=counts,
        confidence=torch.bincount(index, weights=confidence, minlength=bins) / safe,
        accuracy=torch.bincount(index, weights=correct, minlength=bins) / safe,
    )


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE (0 to 1) of N×C probabilities against N labels, over `bins` equal-width confidence bins."""
    return reliability(probabilities, labels, bins).expected_calibration_error
