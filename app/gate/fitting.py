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
    components: tuple[slice, int] | None = None,
) -> DigitGate:
    """A gate (threshold 0: choose it with `highest_safe_threshold`) fitted on N×F `features` and N booleans
    `is_digit` to predict the log-odds of "one digit". Both classes weigh the same in the loss whatever their
    counts, so the threshold, not the class mix, sets the trade-off; plus `l2` · |weights|² / 2. Within a class,
    example i weighs `weights[i]` (positive; default all 1), e.g. to stress the non-digits that are hardest to
    tell from digits. Features that are constant get std 1 (they cannot matter).

    `components` = (columns, K): the first layer sees those columns only through their first K principal
    components (of the standardised columns, each scaled to unit variance): its weights over them have rank ≤ K,
    which the service turns into K rows of fc1's matrix product instead of one per column (`ServingGate`). The
    gate returned is over the original features all the same."""
    if features.ndim != 2 or len(features) != len(is_digit) or len(set(is_digit.tolist())) != 2:
        raise ValueError("need N×F features and N labels of both classes")
    relative = np.ones(len(is_digit)) if weights is None else np.asarray(weights, dtype=np.float64)
    if relative.shape != (len(is_digit),) or not (relative > 0).all():
        raise ValueError("need one positive weight per example")
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    standardised = (features - mean) / std
    projection = np.eye(features.shape[1]) if components is None else component_projection(standardised, *components)
    x = torch.from_numpy(standardised @ projection)
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
    reduced_weights, hidden_bias, output_weights = (tensor.detach().numpy().copy() for tensor in (w1, b1, w2))
    return DigitGate(
        mean,
        std,
        projection @ reduced_weights,
        hidden_bias,
        output_weights,
        output_bias=float(b2.detach()),
        threshold=0.0,
    )


def component_projection(standardised: np.ndarray, columns: slice, count: int) -> np.ndarray:
    """F×F' matrix: the identity on every column but `columns`, which it replaces (in place of the first of them)
    by their first `count` principal components over the rows of `standardised`, each scaled to unit variance."""
    block = standardised[:, columns]
    _, singular, directions = np.linalg.svd(block - block.mean(axis=0), full_matrices=False)
    count = min(count, len(singular))
    scale = np.where(singular[:count] > 1e-12, singular[:count], 1.0) / np.sqrt(len(block))
    features = standardised.shape[1]
    start, stop, _ = columns.indices(features)
    projection = np.zeros((features, features - (stop - start) + count))
    projection[:start, :start] = np.eye(start)
    projection[start:stop, start : start + count] = directions[:count].T / scale
    projection[stop:, start + count :] = np.eye(features - stop)
    return projection


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
