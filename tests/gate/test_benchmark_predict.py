"""The style benchmark reads digits from a gated model's answers as the service does: the ten probabilities only."""

from pathlib import Path

import numpy as np

from app.config import Settings
from app.predictor import Predictor
from benchmarks.style_accuracy import predict
from training.data import load_split


def test_style_benchmark_predicts_digits_with_a_gated_checkpoint(gated_checkpoint: Path, mnist_root: Path):
    predictor = Predictor(Settings(model_path=gated_checkpoint, device="cpu", precision="float32"))
    assert predictor.digit_gate is not None  # its rows carry the gate's columns after the probabilities
    test = load_split(mnist_root, train=False)
    digits = predict(predictor, list(test.images[:100].numpy()))
    assert (digits == test.labels[:100].numpy()).mean() >= 0.98
    assert digits.dtype == np.int64 and set(digits.tolist()) <= set(range(10))
