"""The committed checkpoint: loads, is documented, and scores >= 99.4 % on the real MNIST test set."""

import pytest
import torch

from mnist_model import load_checkpoint
from tests.helpers import REPO
from training.data import load_split
from training.distributed import Runtime
from training.loop import evaluate


def test_shipped_checkpoint_metadata_describes_its_training(shipped_checkpoint):
    _, metadata = load_checkpoint(shipped_checkpoint)
    assert metadata.command.startswith(("python -m training.run", "torchrun"))
    assert metadata.epochs >= 1 and metadata.seed is not None
    assert metadata.test_accuracy >= 0.994
    assert len(metadata.per_class_accuracy) == 10
    card = (REPO / "models" / "README.md").read_text()
    assert metadata.command in card


@pytest.mark.slow
def test_shipped_checkpoint_scores_at_least_99_4_percent(mnist_root, shipped_checkpoint):
    model, metadata = load_checkpoint(shipped_checkpoint)
    test = load_split(mnist_root, train=False)
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    stats = evaluate(model, test, runtime=runtime, mean=metadata.mean, std=metadata.std)  # fp32
    assert int(stats.confusion.sum()) == 10_000
    assert stats.accuracy >= 0.994
    assert metadata.dataset_sha256["test"] == test.sha256()  # trained against these very files
