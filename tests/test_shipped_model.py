"""The committed checkpoint: loads, is documented, is calibrated, and scores >= 99.5 % on the real MNIST test set
(issue 11's floor; issue 12's 99.6 % is not reached yet: see the model card)."""

import shlex
import shutil
import subprocess

import numpy as np
import pytest
import torch

from app.config import Settings
from app.predictor import Predictor
from mnist_model import load_checkpoint
from mnist_model.calibration import apply_temperature, expected_calibration_error
from mnist_model.quantized import int8_available
from tests.helpers import REPO
from training.data import holdout_indices, indices_sha256, load_split
from training.distributed import Runtime
from training.loop import evaluate, predict_log_probs
from training.run import parse_args


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


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_train_runs_the_shipped_checkpoints_recipe(tmp_path, shipped_checkpoint):
    """`make train` exports the rendered digits (seeds 1 and 3, never the gate's seed 0), then trains with the
    recipe the shipped checkpoint records, then records the int8 ranges and fits the gate."""
    run = subprocess.run(
        ["make", "-n", "train", "WORKERS=2", f"DATA={tmp_path}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    lines = [line.replace(".venv/bin/", "") for line in run.stdout.splitlines()]
    assert "make int8 gate" in lines  # last: `make -n` also prints what those make runs would do
    after = lines[lines.index("make int8 gate") :]
    assert f"python -m training.int8 --checkpoint models/mnist_cnn.safetensors --data-dir {tmp_path}" in after
    lines = lines[: lines.index("make int8 gate")]
    exports = [line for line in lines if line.startswith("python -m benchmarks.renders.export")]
    assert [line.split("--seed ")[1] for line in exports] == ["1", "3"]
    assert all("--split train --per-style 700 --per-category 0" in line for line in exports)
    (command,) = [shlex.split(line) for line in lines if line.startswith("python -m training.run")]
    args = parse_args(command[3:])
    assert args.rendered == [tmp_path / "renders-train-digits1.npz", tmp_path / "renders-train-digits3.npz"]
    recipe = load_checkpoint(shipped_checkpoint)[1].hyperparameters
    assert recipe["rendered"] is not None and recipe["outlier_weight"] == args.outlier_weight == 0
    flags = ("seed", "epochs", "lr", "batch_size", "rotate", "scale", "shift", "elastic_p", "stroke_p", "ema_decay")
    assert {flag: recipe[flag] for flag in flags} == {flag: getattr(args, flag) for flag in flags}


@pytest.mark.slow
@pytest.mark.skipif(not int8_available(), reason="this torch build has no oneDNN int8 convolution")
def test_shipped_checkpoint_serves_int8_as_accurately_as_float32(mnist_root, shipped_checkpoint):
    """What `auto` serves on a CPU without native bf16: the checkpoint's recorded int8 ranges (all 60,000 training
    images), the 10,000 test digits read within 0.1 points of float32, and the same answer for nearly every one."""
    _, metadata = load_checkpoint(shipped_checkpoint)
    assert metadata.int8["images"] == 60_000
    test = load_split(mnist_root, train=False)
    pixels, labels = test.images.numpy(), test.labels.numpy()
    answers = {}
    for precision in ("float32", "int8"):
        predictor = Predictor(Settings(model_path=shipped_checkpoint, device="cpu", precision=precision))
        assert predictor.describe()["precision"] == precision
        answers[precision] = np.concatenate(
            [predictor.predict(pixels[i : i + 1000])[:, :10].argmax(dim=1).numpy() for i in range(0, 10_000, 1000)]
        )
    assert abs((answers["int8"] == labels).mean() - (answers["float32"] == labels).mean()) <= 0.001
    assert (answers["int8"] != answers["float32"]).sum() <= 10
