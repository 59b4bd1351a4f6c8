"""A gated checkpoint for the serving tests: the shipped weights with a gate fitted in seconds on small data
(MNIST training digits, canvas renders of training digits, canvas renders of four non-digit categories; all from
the train split). Rates of the real gate are the benchmark's business, not these tests'."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import load_settings
from app.gate.fit import Examples, feature_matrix, load_mnist
from app.gate.fitting import fit_gate, highest_safe_threshold
from app.predictor import Predictor
from app.preprocess import ImageError, inspect_upload
from benchmarks.renders import digit_pool, digit_renders, render_nondigit
from mnist_model.checkpoint import read_metadata, write_metadata

FIXTURE_CATEGORIES = ("letters", "shapes", "symbols", "scribbles")


def rendered(uploads: list[bytes], is_digit: bool, group: str) -> Examples:
    """Uploads through the service's preprocessing (refused ones left out)."""
    kept = []
    for data in uploads:
        try:
            kept.append(inspect_upload(data))
        except ImageError:
            continue
    return Examples(
        np.stack([pixels for pixels, _ in kept]),
        [cues for _, cues in kept],
        np.full(len(kept), is_digit),
        np.full(len(kept), group),
        {},
    )


@pytest.fixture(scope="session")
def gated_checkpoint(shipped_checkpoint: Path, mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped checkpoint with a small gate fitted into it (threshold: ≤ 1 % of its digits)."""
    path = tmp_path_factory.mktemp("gated") / "gated.safetensors"
    shutil.copyfile(shipped_checkpoint, path)
    pool = digit_pool("train", mnist_root)
    canvas = [render.data for render in digit_renders("canvas", "train", 80, pool=pool)]
    nondigits = [
        render_nondigit(category, seed, "train", style="canvas").data
        for category in FIXTURE_CATEGORIES
        for seed in range(60)
    ]
    examples = Examples.concat(
        [
            load_mnist(mnist_root, np.arange(1000)),
            rendered(canvas, True, "canvas"),
            rendered(nondigits, False, "nondigits"),
        ]
    )
    predictor = Predictor(load_settings(model_path=path, device="cpu"))
    features = feature_matrix(predictor, examples)
    gate = fit_gate(features, examples.is_digit, hidden=16, max_iter=200)
    scores = gate.scores(features)
    groups = {group: scores[examples.group == group] for group in ("mnist", "canvas")}
    threshold = highest_safe_threshold(groups, {"mnist": 0.01, "canvas": 0.01})
    gate = dataclasses.replace(gate, threshold=threshold, record={"fitted_on": "tests/gate/conftest.py"})
    write_metadata(path, dataclasses.replace(read_metadata(path), digit_gate=gate.to_metadata()))
    return path
