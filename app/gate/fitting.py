"""Fitting the gate: a class-balanced, L2-regularised one-hidden-layer perceptron, and the threshold that keeps
false flags of real digits inside a budget. Deterministic: float64, full-batch L-BFGS, a seeded initialisation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from app.gate.digit_gate import DigitGate


def fit_gate(
    features: np.ndarray,
    is_digit: np.ndarray,
    hidden: int = 64,
    l2: float = 1e-3,
    max_iter: int = 300,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> DigitGate:
    """A gate (threshold 0: choose it with `highest_safe_threshold`) fitted on N×F `features` and N booleans
    `is_digit` to predict the log-odds of "one digit". Both classes weigh the same in the loss whatever their
    counts, so the threshold, not the class mix, sets the trade-off; plus `l2` · |weights|² / 2. Within a class,
    example i weighs `weights[i]` (positive; default all 1), e.g. to stress the non-digits that are hardest to
    tell from digits. Features that are constant get std 1 (they cannot matter)."""
    if features.ndim != 2 or len(features) != len(is_digit) or len(set(is_digit.tolist())) != 2:
        raise ValueError("need N×F features and N labels of both classes")
    relative = np.ones(len(is_digit)) if weights is None else np.asarray(weights, dtype=np.float64)
    if relative.shape != (len(is_digit),) or not (relative > 0).all():
        raise ValueError("need one positive weight per example")
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    x = torch.from_numpy((features - mean) / std)
    y = torch.from_numpy(is_digit.astype(np.float64))
    w = torch.from_numpy(relative)
    sample_weight = torch.where(y > 0, 0.5 * w / w[y > 0].sum(), 0.5 * w / w[y == 0].sum())
    generator = torch.Generator().manual_seed(seed)
    w1 = (
        torch.randn(x.shape[1], hidden, generator=generator, dtype=torch.float64) / x.shape[1] ** 0.5
    ).requires_grad_()
    b1 = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
    w2 = (torch.randn(hidden, generator=generator, dtype=torch.float64) / hidden**0.5).requires_grad_()
    b2 = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [w1, b1, w2, b2],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.relu(x @ w1 + b1) @ w2 + b2
        loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * sample_weight).sum()
        loss = loss + l2 * (w1.square().sum() + w2.square().sum()) / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    hidden_weights, hidden_bias, output_weights = (tensor.detach().numpy().copy() for tensor in (w1, b1, w2))
    return DigitGate(
        mean, std, hidden_weights, hidden_bias, output_weights, output_bias=float(b2.detach()), threshold=0.0
    )


def highest_safe_threshold(digit_scores: Mapping[str, np.ndarray], budgets: Mapping[str, float]) -> float:
    """The highest threshold t such that, in every group of real digits, the share scoring below t (falsely
    flagged) is at most that group's budget: flagging as many non-digits as those budgets allow.

    For a group of n scores, t = its k-th smallest score (0-based) with k = ⌊budget · n⌋ lets at most the k
    lower ones fall below; the answer is the smallest of these over the groups."""
    limits = []
    for group, scores in digit_scores.items():
        if len(scores) == 0:
            continue
        ordered = np.sort(scores)
        limits.append(float(ordered[min(int(budgets[group] * len(ordered)), len(ordered) - 1)]))
    if not limits:
        raise ValueError("no digit scores to choose a threshold on")
    return min(limits)
