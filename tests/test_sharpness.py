"""training.sharpness and the sharpness-aware step in training.loop: the detour's length and direction, the exact
return, and the optimiser stepping with the gradient taken at the far end of the detour."""

from typing import Any

import numpy as np
import pytest
import torch

from training.data import Split
from training.distributed import Runtime
from training.loop import TrainSetup, train_epoch
from training.sharpness import sharpness_ascent

CPU = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def test_the_ascent_moves_rho_along_the_joint_gradient_and_restores_the_weights_bit_for_bit():
    first = torch.nn.Parameter(torch.tensor([3.0, 0.1]))
    second = torch.nn.Parameter(torch.tensor([1.0 / 3.0]))
    untouched = torch.nn.Parameter(torch.tensor([7.0]))  # no gradient: not part of the step
    first.grad = torch.tensor([6.0, 0.0])
    second.grad = torch.tensor([8.0])  # joint norm 10
    before = (first.detach().clone(), second.detach().clone())
    with sharpness_ascent([first, second, untouched], rho=0.5):
        assert torch.allclose(first, torch.tensor([3.3, 0.1]))
        assert torch.allclose(second, torch.tensor([1.0 / 3.0 + 0.4]))
        assert untouched.item() == 7.0
    assert torch.equal(first, before[0]) and torch.equal(second, before[1])  # copied back, not subtracted
    assert untouched.item() == 7.0


def test_the_weights_are_restored_when_the_block_raises():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    weight.grad = torch.tensor([1.0])
    with pytest.raises(RuntimeError), sharpness_ascent([weight], rho=0.25):
        raise RuntimeError("the second pass failed")
    assert weight.item() == 1.0


class Logits(torch.nn.Module):
    """Answers the same ten logits, its only parameter, whatever the image: the loss and its gradient are known."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits.expand(len(x), 10), dim=1)


def sgd_setup(model: Logits, **extra: Any) -> TrainSetup:
    """Plain SGD at lr 1 on four blank images, all labelled 0, in one batch; `extra` sets more `TrainSetup` fields."""
    return TrainSetup(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        scheduler=None,
        data=Split(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)),
        runtime=CPU,
        batch_size=4,
        progress=False,
        **extra,
    )


def one_sgd_step(start: list[float], sam_rho: float) -> np.ndarray:
    """The logits after one epoch of `sgd_setup`: a single step."""
    model = Logits(start)
    train_epoch(sgd_setup(model, sam_rho=sam_rho), torch.arange(4), generator=None)
    return model.logits.detach().numpy()


def cross_entropy_gradient(logits: np.ndarray) -> np.ndarray:
    """d/dlogits of −log softmax(logits)[0]: softmax − one-hot(0)."""
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    return probabilities - np.eye(10)[0]


def test_a_sharpness_aware_step_follows_the_gradient_at_the_far_end_of_the_detour():
    start = np.array([0.5, -0.2, 0.1, 0.0, 0.3, 0.0, -0.4, 0.0, 0.2, 0.0])
    rho = 0.3
    gradient = cross_entropy_gradient(start)
    far = start + rho * gradient / np.linalg.norm(gradient)
    expected = start - cross_entropy_gradient(far)
    assert np.allclose(one_sgd_step(start.tolist(), rho), expected, atol=1e-12)
    # and not the plain step, which differs by more than the tolerance
    assert np.allclose(one_sgd_step(start.tolist(), 0.0), start - gradient, atol=1e-12)
    assert not np.allclose(expected, start - gradient, atol=1e-3)


def test_sharpness_aware_steps_are_refused_with_fp16_loss_scaling():
    with pytest.raises(ValueError, match="--sam-rho needs bf16 or float32"):
        sgd_setup(Logits([0.0] * 10), grad_scaler=torch.amp.GradScaler("cpu"), sam_rho=0.05)
