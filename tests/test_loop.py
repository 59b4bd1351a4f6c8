"""training.loop: evaluation counts exactly, training lowers the loss, batches are prepared as the model expects."""

import pytest
import torch

from mnist_model import MNIST_MEAN, MNIST_STD, Net
from training.data import Split
from training.distributed import Runtime
from training.loop import TrainSetup, evaluate, prepare_batch, train_epoch

CPU = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


class FixedAnswer(torch.nn.Module):
    """Predicts digit = (index of the brightest row) // 3, so the right answers are known in advance."""

    def forward(self, x):
        scores = torch.full((len(x), 10), -10.0)
        scores[torch.arange(len(x)), x[:, 0].sum(dim=2).argmax(dim=1) // 3] = 0.0
        return torch.log_softmax(scores, dim=1)


def test_evaluate_counts_accuracy_and_confusion_exactly():
    images = torch.zeros(30, 28, 28, dtype=torch.uint8)
    for i in range(30):
        images[i, i % 28] = 255  # brightest row i % 28 → predicted digit (i % 28) // 3
    predicted = torch.tensor([(i % 28) // 3 for i in range(30)])
    labels = predicted.clone()
    labels[:4] = (labels[:4] + 1) % 10  # four deliberate mistakes
    stats = evaluate(FixedAnswer(), Split(images, labels), runtime=CPU, batch_size=7)
    assert stats.accuracy == 26 / 30
    assert int(stats.confusion.sum()) == 30 and int(stats.confusion.trace()) == 26
    assert int(stats.confusion[labels[0], predicted[0]]) >= 1


def test_prepare_batch_normalises_and_adds_the_channel():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    batch = prepare_batch(images, MNIST_MEAN, MNIST_STD)
    assert batch.shape == (5, 1, 28, 28)
    assert torch.allclose(batch[:, 0], (images.float() / 255 - MNIST_MEAN) / MNIST_STD)  # written out, not reused


@pytest.mark.slow  # trains a network for three epochs
def test_train_epoch_lowers_the_loss_on_a_learnable_task():
    torch.manual_seed(0)
    images = torch.zeros(256, 28, 28, dtype=torch.uint8)
    labels = torch.randint(0, 2, (256,))
    images[labels == 1, 10:18, 10:18] = 255  # class 1 has a bright square, class 0 is blank
    model = Net()
    setup = TrainSetup(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        scheduler=None,
        data=Split(images, labels),
        runtime=CPU,
        batch_size=32,
        progress=False,
    )
    losses = [train_epoch(setup, torch.randperm(256), generator=None).loss for _ in range(3)]
    assert losses[-1] < losses[0] / 2
