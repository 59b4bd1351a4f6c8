"""mnist_model.normalize: uint8 and float inputs give the same normalised values."""

import torch

from mnist_model import MNIST_MEAN, MNIST_STD, normalize


def test_uint8_and_float_inputs_give_the_same_values():
    expected = torch.tensor([(v / 255 - MNIST_MEAN) / MNIST_STD for v in (0, 128, 255)])
    assert torch.allclose(normalize(torch.tensor([0, 128, 255], dtype=torch.uint8)), expected)
    assert torch.allclose(normalize(torch.tensor([0.0, 128 / 255, 1.0])), expected)


def test_background_and_ink_values():
    out = normalize(torch.tensor([0, 255], dtype=torch.uint8))
    assert torch.allclose(out, torch.tensor([-MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD]))


def test_custom_mean_std():
    assert torch.allclose(normalize(torch.tensor([0.5]), mean=0.5, std=2.0), torch.tensor([0.0]))
