"""The last step of a run: float32 metrics on the held-out validation images and the test set, and the calibration
temperature fitted on the validation images only (the test set is measured, never fitted or selected on)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from mnist_model.calibration import ECE_BINS, Reliability, apply_temperature, fit_temperature, reliability
from training.data import Split
from training.loop import EvalStats, predict_log_probs, stats_from_log_probs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitReport:
    """One split's metrics with and without the temperature (accuracy and loss are those of the raw network)."""

    stats: EvalStats
    before: Reliability  # T = 1
    after: Reliability  # the fitted T

    def summary(self) -> dict[str, float]:
        return {
            "ece_before": self.before.expected_calibration_error,
            "ece_after": self.after.expected_calibration_error,
        }


@dataclass(frozen=True)
class FinalEvaluation:
    """What the checkpoint's metadata, the log and the model card report about the finished network."""

    temperature: float
    test: SplitReport
    validation: SplitReport | None  # None when --val-samples 0: then T stays 1

    def calibration_metadata(self) -> dict[str, object]:
        """The `calibration` record of the checkpoint."""
        if self.validation is None:
            return {"method": "none (no validation images held out)", "bins": ECE_BINS, "test": self.test.summary()}
        return {
            "method": "temperature scaling: T minimising the validation NLL (L-BFGS over log T)",
            "bins": ECE_BINS,
            "validation": self.validation.summary(),
            "test": self.test.summary(),
        }


def evaluate_and_calibrate(
    network: torch.nn.Module,
    test: Split,
    validation: Split | None,
    *,
    device: torch.device,
    mean: float,
    std: float,
    batch_size: int,
) -> FinalEvaluation:
    """Fit T on `validation` (when given), then report both splits before and after applying it."""

    def log_probs_of(split: Split) -> torch.Tensor:
        return predict_log_probs(network, split, device=device, mean=mean, std=std, batch_size=batch_size)

    held_out = (log_probs_of(validation), validation.labels) if validation is not None else None
    temperature = fit_temperature(*held_out) if held_out is not None else 1.0

    def report(log_probs: torch.Tensor, labels: torch.Tensor) -> SplitReport:
        return SplitReport(
            stats=stats_from_log_probs(log_probs, labels),
            before=reliability(log_probs.exp(), labels),
            after=reliability(apply_temperature(log_probs, temperature), labels),
        )

    result = FinalEvaluation(
        temperature=temperature,
        test=report(log_probs_of(test), test.labels),
        validation=report(*held_out) if held_out is not None else None,
    )
    for name, split in (("validation", result.validation), ("test", result.test)):
        if split is not None:
            log.info(
                "%s: accuracy %.2f%%  loss %.4f  ECE %.2f%% → %.2f%% with temperature %.3f",
                name,
                100 * split.stats.accuracy,
                split.stats.loss,
                100 * split.before.expected_calibration_error,
                100 * split.after.expected_calibration_error,
                temperature,
            )
    return result
