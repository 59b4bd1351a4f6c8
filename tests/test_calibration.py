"""mnist_model.calibration: temperature fitting and calibration error against values worked out by hand."""

import math

import pytest
import torch

from mnist_model.calibration import apply_temperature, expected_calibration_error, fit_temperature, reliability


def one_sure_class(n: int, logit: float, right_share: float, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows of logits [logit, 0, …, 0]; the first round(right_share · n) labels are 0, the rest spread over 1…9."""
    logits = torch.zeros(n, classes)
    logits[:, 0] = logit
    right = round(right_share * n)
    labels = torch.cat([torch.zeros(right, dtype=torch.long), torch.arange(n - right) % (classes - 1) + 1])
    return logits, labels


@pytest.mark.parametrize(
    ("logit", "right_share", "classes"),
    [(4.0, 0.8, 2), (6.0, 0.9, 10), (1.0, 0.9, 10), (3.0, 0.5, 10)],
)
def test_fitted_temperature_matches_the_closed_form(logit, right_share, classes):
    # With logits [a, 0, …, 0] the NLL is least when softmax gives class 0 exactly its share q of right answers:
    # e^(a/T) / (e^(a/T) + C − 1) = q, so T = a / ln((C − 1) q / (1 − q)).
    logits, labels = one_sure_class(1000, logit, right_share, classes)
    expected = logit / math.log((classes - 1) * right_share / (1 - right_share))
    assert fit_temperature(logits, labels) == pytest.approx(expected, rel=1e-4)


def test_an_overconfident_model_gets_t_above_1_and_an_underconfident_one_below():
    sure, labels = one_sure_class(500, 10.0, 0.9)
    assert fit_temperature(sure, labels) > 1
    assert fit_temperature(sure / 20, labels) < 1


def test_fitting_takes_log_probabilities_as_well_as_logits():
    logits, labels = one_sure_class(200, 5.0, 0.85)
    from_logits = fit_temperature(logits, labels)
    assert fit_temperature(torch.log_softmax(logits, dim=1), labels) == pytest.approx(from_logits, rel=1e-6)


def test_fit_refuses_mismatched_or_empty_input():
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(3, 10), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))


def test_apply_temperature_by_hand():
    log_probs = torch.log(torch.tensor([[1.0, 2.0, 3.0]]) / 6)
    torch.testing.assert_close(apply_temperature(log_probs, 1.0), torch.tensor([[1 / 6, 2 / 6, 3 / 6]]))
    # T = 1/2 squares the probabilities before renormalising: [1, 4, 9] / 14.
    torch.testing.assert_close(apply_temperature(log_probs, 0.5), torch.tensor([[1 / 14, 4 / 14, 9 / 14]]))
    # T = 2 takes square roots: [1, √2, √3] / (1 + √2 + √3).
    roots = torch.tensor([[1.0, math.sqrt(2), math.sqrt(3)]])
    torch.testing.assert_close(apply_temperature(log_probs, 2.0), roots / roots.sum())


def rows(top: float, predicted: list[int]) -> torch.Tensor:
    """Probability rows (float64, so 0.6 is 9/15 exactly) whose top class is `predicted[i]` with probability `top`."""
    probabilities = torch.full((len(predicted), 10), (1 - top) / 9, dtype=torch.float64)
    probabilities[torch.arange(len(predicted)), torch.tensor(predicted)] = top
    return probabilities


def test_ece_by_hand():
    # Two answers at confidence 0.9, one right (accuracy 0.5); two at 0.6, both right (accuracy 1.0).
    # ECE = 2/4 · |0.5 − 0.9| + 2/4 · |1.0 − 0.6| = 0.2 + 0.2 = 0.4.
    probabilities = torch.cat([rows(0.9, [0, 1]), rows(0.6, [2, 3])])
    labels = torch.tensor([0, 7, 2, 3])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)


def test_ece_is_zero_when_confidence_equals_accuracy():
    probabilities = rows(0.7, [5] * 10)
    labels = torch.tensor([5] * 7 + [1, 2, 3])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)


def test_reliability_bins_are_right_closed_equal_width():
    # 15 bins of width 1/15: 0.6 = 9/15 closes bin 8; 1.0 closes the last; 0.1 (a uniform row) falls in bin 1.
    probabilities = torch.cat(
        [rows(0.6, [0]), rows(1.0, [1]), torch.full((1, 10), 0.1, dtype=torch.float64), rows(0.61, [2])]
    )
    bins = reliability(probabilities, torch.tensor([0, 1, 0, 9]))
    assert bins.counts.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]
    assert bins.accuracy[8].item() == 1.0 and bins.accuracy[9].item() == 0.0
    assert bins.confidence[9].item() == pytest.approx(0.61)


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    logits, labels = one_sure_class(1000, 8.0, 0.8)
    before = expected_calibration_error(torch.softmax(logits, dim=1), labels)
    after = expected_calibration_error(apply_temperature(logits, fit_temperature(logits, labels)), labels)
    assert before == pytest.approx(0.2, abs=0.01)  # confidence ≈ 0.9970 against 80 % right
    assert after < 0.001
