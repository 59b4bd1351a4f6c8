"""mnist_model.head: the numpy head answers what `Net` then temperature scaling answer, with the gate's two
summaries of it, and survives logits far beyond float32's exp range."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_model import Net
from mnist_model.head import CalibratedHead


@pytest.mark.parametrize("temperature", [1.0, 0.437, 2.0])
def test_probabilities_are_the_networks_softmax_divided_by_the_temperature(temperature):
    torch.manual_seed(0)
    net = Net().eval()
    pre = torch.randn(6, 128) * 3
    with torch.no_grad():
        logits = net.fc2(F.relu(pre)).double()
    expected = torch.softmax(torch.log_softmax(logits, dim=1) / temperature, dim=1).numpy()
    answer = CalibratedHead(net.fc2, temperature)(pre.numpy().copy())
    assert answer.probabilities.dtype == np.float32 and answer.probabilities.shape == (6, 10)
    assert np.allclose(answer.probabilities, expected, rtol=1e-5, atol=1e-6)
    assert np.allclose(answer.max_probability[:, 0], expected.max(axis=1), rtol=1e-5)
    assert np.allclose(answer.energy[:, 0], torch.logsumexp(logits, dim=1).numpy(), rtol=1e-5, atol=1e-5)


def test_strided_input_is_read_right_and_left_as_it_was():
    net = Net().eval()
    readouts = np.random.default_rng(0).normal(size=(4, 160)).astype(np.float32)
    kept = readouts.copy()
    pre = readouts[:, :128]  # a view with the row stride of 160 columns, as the predictor passes it
    with torch.no_grad():
        expected = torch.softmax(net.fc2(F.relu(torch.from_numpy(pre.copy()))), dim=1).numpy()
    answer = CalibratedHead(net.fc2, 1.0)(pre)
    assert np.allclose(answer.probabilities, expected, atol=1e-6)
    assert np.array_equal(readouts, kept)  # the ReLU worked on a copy: the digit gate reads the pre-activations too


def test_huge_logits_give_finite_probabilities_and_the_exact_energy():
    fc2 = torch.nn.Linear(128, 10)
    with torch.no_grad():
        fc2.weight.zero_()
        fc2.bias.copy_(torch.tensor([1000.0, 999.0] + [-1000.0] * 8))
    answer = CalibratedHead(fc2, 1.0)(np.zeros((1, 128), np.float32))
    assert np.isfinite(answer.probabilities).all()
    assert answer.probabilities[0, 0] == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-6)
    assert answer.energy[0, 0] == pytest.approx(1000 + math.log(1 + math.exp(-1)), rel=1e-6)
