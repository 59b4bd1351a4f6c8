"""One training epoch and one evaluation pass over in-memory uint8 tensors, whole batches at a time."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_model import MNIST_MEAN, MNIST_STD, normalize
from training.augment import Augmentation, augment
from training.data import Split
from training.distributed import Runtime, all_reduce_sum
from training.sharpness import NOT_WITH_FP16, sharpness_ascent


@dataclass(frozen=True)
class EpochStats:
    """Summed over every rank: what the per-epoch log line and the metrics history show."""

    loss: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class EvalStats:
    """Results over a whole split (all ranks' shards reduced)."""

    loss: float
    accuracy: float
    confusion: torch.Tensor  # 10×10, rows = true digit, columns = predicted digit

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp(min=1)
        return (self.confusion.diagonal() / totals).tolist()


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    """Mixed precision when `dtype` is set (bf16/fp16), else a no-op."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_batch(
    images: torch.Tensor,
    mean: float,
    std: float,
    generator: torch.Generator | None = None,
    augmentation: Augmentation | None = None,
) -> torch.Tensor:
    """uint8 N×28×28 on the device → normalised N×1×28×28 floats, augmented when a generator and config are given."""
    batch = images.unsqueeze(1).float().div_(255.0)
    if generator is not None and augmentation is not None:
        batch = augment(batch, generator, augmentation)
    return normalize(batch, mean, std)


def training_loss(log_probs: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the network's log-probabilities (log_softmax is idempotent, so cross_entropy may re-apply
    it), with `label_smoothing` of each target spread uniformly over the ten classes."""
    if label_smoothing == 0:
        return F.nll_loss(log_probs, labels)
    return F.cross_entropy(log_probs.float(), labels, label_smoothing=label_smoothing)


def uniform_cross_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Outlier exposure (Hendrycks et al. 2019, "Deep Anomaly Detection with Outlier Exposure"): the cross-entropy
    between the uniform distribution over the ten classes and the network's answer, -mean_k log p_k, averaged over
    the batch. It is smallest (log 10) when a non-digit gets probability 1/10 for every digit."""
    return -log_probs.float().mean(dim=1).mean()


def distillation_loss(log_probs: torch.Tensor, teacher_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"): the KL
    divergence from the teacher's answer to the student's, both softened by `temperature`, times temperature² so
    that its gradients keep their size as the temperature changes; averaged over the batch.

    Why: the teacher's answer on an augmented image says how much it looks like each digit (a 7 turned until it
    leans like a 1, a 4 closed like a 9), which a one-hot label cannot; log-probabilities divided by a temperature
    and normalised again are the logits' softened softmax, since the two differ by a constant per image.
    """
    student = F.log_softmax(log_probs.float() / temperature, dim=1)
    teacher = F.log_softmax(teacher_log_probs.float() / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


@dataclass(frozen=True)
class TrainSetup:
    """What every epoch of a run shares, built once: `train_epoch` gets it plus what changes per epoch."""

    model: torch.nn.Module  # the DDP wrapper under torchrun (it all-reduces the gradients), else the network
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None  # stepped once per batch
    data: Split  # the whole training split, on the CPU or on the training GPU
    runtime: Runtime
    batch_size: int
    amp_dtype: torch.dtype | None = None
    grad_scaler: torch.amp.GradScaler | None = None  # float16 only: bf16's range needs no loss scaling
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    progress: bool = True
    augmentation: Augmentation | None = None  # used when train_epoch gets a generator
    label_smoothing: float = 0.0
    ema: torch.optim.swa_utils.AveragedModel | None = None  # updated after every optimiser step
    outliers: torch.Tensor | None = None  # non-digits (N×28×28 uint8) for outlier exposure
    outlier_weight: float = 0.0  # weight of `uniform_cross_entropy` on them in the loss
    outlier_batch: int = 32  # non-digits drawn (with replacement) for each step
    teacher: torch.nn.Module | None = None  # a trained network in eval mode, for `distillation_loss`
    distill_weight: float = 0.0  # the distillation term's share of the digits' loss (the labels' is the rest)
    distill_temperature: float = 4.0
    sam_rho: float = 0.0  # > 0: sharpness-aware steps (`training.sharpness`) at this radius; not with grad_scaler

    def __post_init__(self) -> None:
        if self.sam_rho > 0 and self.grad_scaler is not None:
            raise ValueError(NOT_WITH_FP16)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The network that is validated, tested and saved: the moving average when there is one."""
        return self.ema.module if self.ema is not None else unwrap(self.model)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def batch_loss(setup: TrainSetup, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of one prepared batch: the first len(y) images are digits labelled `y`, any after them the
    non-digits of outlier exposure."""
    with autocast(setup.runtime.device, setup.amp_dtype):
        log_probs = setup.model(x)
        loss = training_loss(log_probs[: len(y)], y, setup.label_smoothing)
        if setup.teacher is not None and setup.distill_weight > 0:
            with torch.no_grad():
                teacher_log_probs = setup.teacher(x[: len(y)])
            soft = distillation_loss(log_probs[: len(y)], teacher_log_probs, setup.distill_temperature)
            loss = (1 - setup.distill_weight) * loss + setup.distill_weight * soft
        if len(x) > len(y):
            loss = loss + setup.outlier_weight * uniform_cross_entropy(log_probs[len(y) :])
    return loss


def train_epoch(
    setup: TrainSetup, indices: torch.Tensor, *, generator: torch.Generator | None, description: str = "train"
) -> EpochStats:
    """Train on `setup.data[indices]` (this rank's shard, already shuffled) in batches of `setup.batch_size`.

    `generator` drives the random augmentation (None: none); `description` labels the progress bar.
    """
    model, optimizer, scheduler, runtime = setup.model, setup.optimizer, setup.scheduler, setup.runtime
    images, labels = setup.data.images, setup.data.labels
    model.train()
    device = runtime.device
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    start = time.perf_counter()
    batches = indices.split(setup.batch_size)
    exposed = setup.outliers is not None and setup.outlier_weight > 0
    # Drawn from the global generator, which run_epochs seeds per (seed, epoch, rank): resumable like the rest.
    outlier_draws = (
        torch.randint(len(setup.outliers), (len(batches), setup.outlier_batch))
        if exposed and setup.outliers is not None
        else None
    )
    for step, batch_indices in enumerate(
        tqdm(batches, desc=description, disable=not (setup.progress and runtime.is_main), leave=False)
    ):
        batch_indices = batch_indices.to(images.device)
        x = prepare_batch(
            images[batch_indices].to(device, non_blocking=True), setup.mean, setup.std, generator, setup.augmentation
        )
        y = labels[batch_indices].to(device, non_blocking=True)
        if outlier_draws is not None and setup.outliers is not None:
            outliers = setup.outliers[outlier_draws[step].to(setup.outliers.device)].to(device, non_blocking=True)
            x = torch.cat([x, prepare_batch(outliers, setup.mean, setup.std, generator, setup.augmentation)])
        loss = batch_loss(setup, x, y)
        optimizer.zero_grad(set_to_none=True)
        if setup.sam_rho > 0:  # the step's gradient is taken at the worst weights within sam_rho (training.sharpness)
            loss.backward()
            with sharpness_ascent(model.parameters(), setup.sam_rho):
                optimizer.zero_grad(set_to_none=True)
                batch_loss(setup, x, y).backward()
            optimizer.step()
        elif setup.grad_scaler is not None:
            setup.grad_scaler.scale(loss).backward()
            setup.grad_scaler.step(optimizer)
            setup.grad_scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if setup.ema is not None:
            setup.ema.update_parameters(unwrap(model))
        total_loss += loss.detach().double() * len(batch_indices)
    count = torch.tensor([len(indices)], device=device, dtype=torch.float64)
    reduced = all_reduce_sum(torch.cat([total_loss.view(1), count]), runtime)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return EpochStats(loss=(reduced[0] / reduced[1]).item(), images=int(reduced[1].item()), seconds=seconds)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    data: Split,
    *,
    runtime: Runtime,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    batch_size: int = 1000,
    amp_dtype: torch.dtype | None = None,
) -> EvalStats:
    """Loss, accuracy and confusion matrix on `data`; each rank takes every world_size-th image.

    `mean`/`std` are the normalisation the model was trained with (a checkpoint records them).
    """
    model.eval()
    device = runtime.device
    images, labels = data.images, data.labels
    shard = torch.arange(runtime.rank, len(labels), runtime.world_size)
    loss_sum = torch.zeros(1, device=device, dtype=torch.float64)
    confusion = torch.zeros(10 * 10, device=device, dtype=torch.float64)
    for batch_indices in shard.split(batch_size):
        batch_indices = batch_indices.to(images.device)
        x = prepare_batch(images[batch_indices].to(device), mean, std)
        y = labels[batch_indices].to(device)
        with autocast(device, amp_dtype):
            output = model(x).float()
        loss_sum += F.nll_loss(output, y, reduction="sum").double()
        confusion += torch.bincount(y * 10 + output.argmax(dim=1), minlength=100).double()
    reduced = all_reduce_sum(torch.cat([loss_sum, confusion]), runtime).cpu()
    confusion_matrix = reduced[1:].view(10, 10).long()
    total = confusion_matrix.sum().item()
    return EvalStats(
        loss=reduced[0].item() / total,
        accuracy=confusion_matrix.diagonal().sum().item() / total,
        confusion=confusion_matrix,
    )


@torch.inference_mode()
def predict_log_probs(
    model: torch.nn.Module,
    data: Split,
    *,
    device: torch.device,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    batch_size: int = 1000,
) -> torch.Tensor:
    """The network's float32 log-probabilities (N×10, on the CPU) for every image of `data`, in one process.

    For the final report and calibration: float32, so the numbers do not depend on a machine's bf16 support.
    """
    model.eval()
    outputs = [
        model(prepare_batch(data.images[batch].to(device), mean, std)).float().cpu()
        for batch in torch.arange(len(data)).split(batch_size)
    ]
    return torch.cat(outputs) if outputs else torch.empty(0, 10)


def stats_from_log_probs(log_probs: torch.Tensor, labels: torch.Tensor) -> EvalStats:
    """Loss, accuracy and confusion matrix from log-probabilities already computed (N×10) and their labels."""
    labels = labels.cpu()
    confusion = torch.bincount(labels * 10 + log_probs.argmax(dim=1), minlength=100).view(10, 10)
    return EvalStats(
        loss=F.nll_loss(log_probs.double(), labels).item(),
        accuracy=confusion.diagonal().sum().item() / len(labels),
        confusion=confusion,
    )
