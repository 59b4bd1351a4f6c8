"""The committed checkpoint: loads, is documented, is calibrated, and scores >= 99.5 % on the real MNIST test set
(issue 11's floor; issue 12's 99.6 % is not reached yet: see the model card)."""

import pytest
import torch

from mnist_model import load_checkpoint
from mnist_model.calibration import apply_temperature, expected_calibration_error
from tests.helpers import REPO
from training.data import holdout_indices, indices_sha256, load_split
from training.distributed import Runtime
from training.loop import evaluate, predict_log_probs


def test_shipped_checkpoint_metadata_describes_its_training(shipped_checkpoint):
    _, metadata = load_checkpoint(shipped_checkpoint)
    assert metadata.command.startswith(("python -m training.run", "torchrun"))
    assert metadata.epochs >= 1 and metadata.seed is not None
    assert metadata.test_accuracy >= 0.995
    assert len(metadata.per_class_accuracy) == 10
    assert metadata.validation["count"] == 5000 and metadata.temperature != 1.0  # calibrated on held-out images
    assert metadata.calibration["test"]["ece_after"] <= 0.01
    card = (REPO / "models" / "README.md").read_text()
    assert metadata.command in card and f"T = {metadata.temperature:.3f}" in card


def test_readme_introduction_quotes_the_shipped_checkpoints_test_accuracy(shipped_checkpoint):
    """The first figure a newcomer reads: it stayed at the first checkpoint's 99.50 % through two newer ones."""
    _, metadata = load_checkpoint(shipped_checkpoint)
    introduction = (REPO / "README.md").read_text().split("\n## ", 1)[0]
    assert f"trained here to **{100 * metadata.test_accuracy:.2f} %** on the MNIST test set" in introduction


@pytest.mark.slow
def test_shipped_checkpoint_scores_at_least_99_5_percent(mnist_root, shipped_checkpoint):
    model, metadata = load_checkpoint(shipped_checkpoint)
    test = load_split(mnist_root, train=False)
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    stats = evaluate(model, test, runtime=runtime, mean=metadata.mean, std=metadata.std)  # fp32
    assert int(stats.confusion.sum()) == 10_000
    assert stats.accuracy >= 0.995
    assert stats.accuracy == pytest.approx(metadata.test_accuracy, abs=1.5e-4)  # as recorded, to one image
    assert metadata.dataset_sha256["test"] == test.sha256()  # trained against these very files


@pytest.mark.slow
def test_shipped_checkpoint_is_calibrated_on_the_test_set(mnist_root, shipped_checkpoint):
    model, metadata = load_checkpoint(shipped_checkpoint)
    test = load_split(mnist_root, train=False)
    log_probs = predict_log_probs(model, test, device=torch.device("cpu"), mean=metadata.mean, std=metadata.std)
    calibrated = expected_calibration_error(apply_temperature(log_probs, metadata.temperature), test.labels)
    assert calibrated <= 0.01  # issue 11's target: ECE (15 bins) at most 1 % on MNIST test


@pytest.mark.slow
def test_shipped_checkpoints_validation_images_can_be_rebuilt(mnist_root, shipped_checkpoint):
    _, metadata = load_checkpoint(shipped_checkpoint)
    held = metadata.validation
    train = load_split(mnist_root, train=True)
    assert held["total"] == len(train) and held["source"] == "MNIST training set"
    assert indices_sha256(holdout_indices(len(train), held["count"], held["seed"])) == held["indices_sha256"]
