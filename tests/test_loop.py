"""training.loop: evaluation counts exactly, training lowers the loss, batches are prepared as the model expects."""

import math
from typing import Any

import pytest
import torch

from mnist_model import MNIST_MEAN, MNIST_STD, Net
from training.augment import Augmentation
from training.data import Split
from training.distributed import Runtime
from training.loop import (
    TrainSetup,
    distillation_loss,
    evaluate,
    predict_log_probs,
    prepare_batch,
    stats_from_log_probs,
    train_epoch,
    training_loss,
    uniform_cross_entropy,
)

CPU = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


class FixedAnswer(torch.nn.Module):
    """Predicts digit = (index of the brightest row) // 3, so the right answers are known in advance."""

    def forward(self, x):
        scores = torch.full((len(x), 10), -10.0)
        scores[torch.arange(len(x)), x[:, 0].sum(dim=2).argmax(dim=1) // 3] = 0.0
        return torch.log_softmax(scores, dim=1)


def square_task() -> tuple[torch.Tensor, torch.Tensor]:
    """256 images of two classes a network learns in a few steps: class 1 has a bright square, class 0 is blank."""
    images = torch.zeros(256, 28, 28, dtype=torch.uint8)
    labels = torch.randint(0, 2, (256,))
    images[labels == 1, 10:18, 10:18] = 255
    return images, labels


def square_task_setup(model: Net, images: torch.Tensor, labels: torch.Tensor, **extra: Any) -> TrainSetup:
    """A plain AdamW setup on CPU for `square_task`, batches of 32; `extra` sets more `TrainSetup` fields."""
    return TrainSetup(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        scheduler=None,
        data=Split(images, labels),
        runtime=CPU,
        batch_size=32,
        progress=False,
        **extra,
    )


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
    images, labels = square_task()
    setup = square_task_setup(Net(), images, labels)
    losses = [train_epoch(setup, torch.randperm(256), generator=None).loss for _ in range(3)]
    assert losses[-1] < losses[0] / 2


def test_prepare_batch_augments_only_with_both_a_generator_and_a_config():
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[:, 8:20, 12:16] = 255
    plain = prepare_batch(images, MNIST_MEAN, MNIST_STD)
    assert torch.equal(prepare_batch(images, MNIST_MEAN, MNIST_STD, torch.Generator().manual_seed(0)), plain)
    augmented = prepare_batch(images, MNIST_MEAN, MNIST_STD, torch.Generator().manual_seed(0), Augmentation())
    assert augmented.shape == plain.shape and not torch.equal(augmented, plain)


def test_label_smoothing_loss_matches_its_definition():
    log_probs = torch.log_softmax(torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0, 3, 9, 2, 2, 7])
    nll = -log_probs[torch.arange(6), labels].mean()
    uniform = -log_probs.mean()  # cross-entropy to the uniform distribution, averaged over rows
    torch.testing.assert_close(training_loss(log_probs, labels), nll)
    torch.testing.assert_close(training_loss(log_probs, labels, 0.1), 0.9 * nll + 0.1 * uniform)


def test_uniform_cross_entropy_is_smallest_for_the_uniform_answer():
    uniform = torch.full((3, 10), math.log(0.1))
    torch.testing.assert_close(uniform_cross_entropy(uniform), torch.tensor(math.log(10)))
    confident = torch.log_softmax(torch.tensor([[9.0] + [0.0] * 9] * 3), dim=1)
    assert uniform_cross_entropy(confident) > uniform_cross_entropy(uniform) + 2  # ≈ 9 · 0.9 nats more


def test_outlier_exposure_makes_the_network_unsure_on_non_digits_only():
    torch.manual_seed(0)
    images, labels = square_task()
    outliers = torch.zeros(64, 28, 28, dtype=torch.uint8)
    outliers[:, 4:24, 13:15] = 255  # a thin bar: neither class

    def trained(outlier_weight: float) -> torch.nn.Module:
        torch.manual_seed(1)
        model = Net()
        setup = square_task_setup(
            model, images, labels, outliers=outliers, outlier_weight=outlier_weight, outlier_batch=16
        )
        for _ in range(3):
            train_epoch(setup, torch.randperm(256), generator=None)
        return model.eval()

    def top_probability(model: torch.nn.Module, batch: torch.Tensor) -> float:
        with torch.inference_mode():
            return float(model(prepare_batch(batch, MNIST_MEAN, MNIST_STD)).exp().max(dim=1).values.mean())

    plain, exposed = trained(0.0), trained(1.0)
    assert top_probability(exposed, outliers) < 0.5 < top_probability(plain, outliers)
    assert top_probability(exposed, images[:64]) > 0.9  # still sure of the real classes


def test_moving_average_is_updated_every_step_and_is_what_gets_evaluated():
    torch.manual_seed(0)
    model = Net()
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    images = torch.randint(0, 256, (96, 28, 28), dtype=torch.uint8)
    setup = TrainSetup(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        scheduler=None,
        data=Split(images, torch.randint(0, 10, (96,))),
        runtime=CPU,
        batch_size=32,
        progress=False,
        ema=ema,
    )
    assert setup.evaluated is ema.module
    train_epoch(setup, torch.arange(96), generator=None)
    assert int(ema.n_averaged) == 3  # one update per batch
    assert not torch.equal(ema.module.fc2.weight, model.fc2.weight)  # it lags behind the trained weights


def test_log_probs_in_one_process_give_the_same_metrics_as_evaluate():
    images = torch.zeros(30, 28, 28, dtype=torch.uint8)
    for i in range(30):
        images[i, i % 28] = 255
    labels = torch.tensor([(i % 28) // 3 for i in range(30)])
    labels[:5] = (labels[:5] + 2) % 10
    split = Split(images, labels)
    log_probs = predict_log_probs(FixedAnswer(), split, device=torch.device("cpu"), batch_size=8)
    assert log_probs.shape == (30, 10) and log_probs.dtype == torch.float32
    ours, reference = stats_from_log_probs(log_probs, labels), evaluate(FixedAnswer(), split, runtime=CPU)
    assert ours.accuracy == reference.accuracy == 25 / 30
    assert torch.equal(ours.confusion, reference.confusion)
    assert ours.loss == pytest.approx(reference.loss, rel=1e-6)  # float64 here, float32 sums per batch there


def test_distillation_loss_matches_its_definition():
    teacher = torch.log(torch.tensor([[0.75, 0.25]]))
    student = torch.log(torch.tensor([[0.5, 0.5]]))
    # KL(teacher ‖ student) = Σ t · ln(t / s), written out
    at_one = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    torch.testing.assert_close(distillation_loss(student, teacher, 1.0), torch.tensor(at_one))
    soft = torch.tensor([math.sqrt(0.75), math.sqrt(0.25)])  # the teacher at temperature 2, normalised below
    soft /= soft.sum()
    at_two = 4 * float((soft * torch.log(soft / 0.5)).sum())
    torch.testing.assert_close(distillation_loss(student, teacher, 2.0), torch.tensor(at_two))
    assert float(distillation_loss(teacher.repeat(3, 1), teacher.repeat(3, 1), 4.0)) == pytest.approx(0, abs=1e-7)


def test_a_network_distilled_alone_learns_the_teachers_answers_not_the_labels():
    torch.manual_seed(0)
    images = torch.zeros(256, 28, 28, dtype=torch.uint8)
    bottom = torch.rand(256) < 0.5
    images[bottom, 27] = 255  # FixedAnswer reads the brightest row: 27 → digit 9, else row 0 → digit 0
    images[~bottom, 0] = 255
    answers = torch.where(bottom, 9, 0)
    labels = torch.randint(0, 10, (256,))  # noise: nothing to learn from them

    def agreement(distill_weight: float) -> float:
        torch.manual_seed(1)
        model = Net()
        setup = square_task_setup(
            model, images, labels, teacher=FixedAnswer(), distill_weight=distill_weight, distill_temperature=2.0
        )
        for _ in range(3):
            train_epoch(setup, torch.randperm(256), generator=None)
        with torch.inference_mode():
            predicted = model.eval()(prepare_batch(images, MNIST_MEAN, MNIST_STD)).argmax(dim=1)
        return float((predicted == answers).float().mean())

    assert agreement(1.0) > 0.95
    assert agreement(0.0) < 0.7  # the labels alone do not give the teacher's answers
