"""Pixel normalisation shared by training and serving (the checkpoint records the mean/std it was trained with)."""

import torch

MNIST_MEAN = 0.1307
"""Mean of the MNIST training pixels scaled to [0, 1] (the value pytorch/examples uses)."""
MNIST_STD = 0.3081
"""Standard deviation of the MNIST training pixels scaled to [0, 1]."""


def normalize(images: torch.Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """Turn uint8 images (0 = background, 255 = ink) or floats in [0, 1] into the network's float input.

    Works on any shape and device, on whole batches at once: training calls it per batch on the training device.
    """
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    return (images - mean) / std
