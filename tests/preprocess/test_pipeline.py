"""app.preprocess entry points: the tensor the model gets, purity, and accuracy on realistic uploads per style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.preprocess import preprocess, to_mnist_pixels, to_model_input
from tests.preprocess.images import encode, glyph, on_paper


def test_preprocess_returns_normalised_float32_1x28x28() -> None:
    data = encode(glyph(), "PNG")
    tensor = preprocess(data, mean=0.5, std=0.25)
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32
    expected = (to_mnist_pixels(data).astype(np.float32) / 255 - 0.5) / 0.25  # normalisation written out
    torch.testing.assert_close(tensor, torch.from_numpy(expected)[None])
    assert tensor.min().item() == pytest.approx(-2.0) and tensor.max().item() == pytest.approx(2.0)


def test_to_model_input_takes_one_image_or_a_batch_and_leaves_the_pixels_alone() -> None:
    pixels = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    batch = to_model_input(pixels, mean=0.5, std=0.25)
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.float32
    assert torch.all(batch[0] == -2.0) and torch.all(batch[1] == 2.0)
    single = to_model_input(pixels[1], mean=0.5, std=0.25)
    assert single.shape == (1, 28, 28) and torch.all(single == 2.0)
    assert pixels[0].max() == 0 and pixels[1].min() == 255


def test_preprocess_is_pure(reference: np.ndarray) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    data = encode(on_paper(glyph(200)), "JPEG")
    first = to_mnist_pixels(data, max_pixels=10**9)
    assert np.array_equal(first, to_mnist_pixels(data))
    assert Image.MAX_IMAGE_PIXELS == limit


# ---------------------------------------------------------------- accuracy on realistic renders


@pytest.mark.slow  # renders and classifies 300 images
def test_accuracy_on_rendered_uploads_per_style(mnist_root: Path, shipped_checkpoint: Path) -> None:
    from benchmarks.renders import CLASSIC_STYLES, render
    from mnist_model import load_checkpoint
    from training.data import load_split

    model, metadata = load_checkpoint(shipped_checkpoint)
    test = load_split(mnist_root, train=False)
    indices = np.random.default_rng(7).choice(len(test), size=50, replace=False)  # seeds unseen by the tuning runs
    accuracy = {}
    with torch.inference_mode():
        for style in CLASSIC_STYLES:
            batch = torch.stack(
                [
                    preprocess(
                        render(style, test.images[i].numpy(), 10_000 + int(i)),
                        mean=metadata.mean,
                        std=metadata.std,
                    )
                    for i in indices
                ]
            )
            accuracy[style] = (model(batch).argmax(1) == test.labels[indices]).float().mean().item()
        direct = model(((test.images[indices].float() / 255 - metadata.mean) / metadata.std).unsqueeze(1)).argmax(1)
        rendered = model(
            torch.stack(
                [
                    preprocess(render("mnist", test.images[i].numpy(), 0), mean=metadata.mean, std=metadata.std)
                    for i in indices
                ]
            )
        )
    assert all(value >= 0.98 for value in accuracy.values()), accuracy
    assert torch.equal(rendered.argmax(1), direct)  # a genuine MNIST digit keeps its prediction
