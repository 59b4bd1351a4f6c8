"""Train the MNIST CNN and write `models/mnist_cnn.safetensors` plus its reports and model card.

One process (CPU or one GPU):
    python -m training.run
    python -m training.run --epochs 3 --data-dir /data/mnist --output /tmp/mnist.safetensors
One machine, 4 GPUs (or 4 CPU processes):
    torchrun --standalone --nproc_per_node=4 -m training.run
Two machines, 8 GPUs each (run on both, HOST = the first machine's address):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 -m training.run
Continue an interrupted run (same flags, plus --resume):
    python -m training.run --resume
Fine-tune a checkpoint (its weights as the start; a lower --lr, a few epochs):
    python -m training.run --init-from models/mnist_cnn.safetensors --epochs 5 --lr 3e-4 --rendered mine.npz \
        --output /tmp/tuned.safetensors
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset, DistributedSampler

from mnist_model import MNIST_MEAN, MNIST_STD, CheckpointError, Net, load_checkpoint
from mnist_model.device import DeviceError
from mnist_model.malloc import keep_freed_memory
from training import distributed
from training.calibrate import evaluate_and_calibrate
from training.config import RUN_SHAPING, augmentation, parse_args, run_config, shaping_defaults
from training.data import DataError, Split, holdout_indices, indices_sha256, load_split, split_validation
from training.loop import EvalStats, TrainSetup, evaluate, train_epoch
from training.outputs import write_outputs
from training.recipe import OPTIMIZER, build_scheduler, pick_amp_dtype
from training.rendered import load_rendered
from training.state import StateError, check_compatible, load_state, save_state, state_path_for

log = logging.getLogger("training")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, join torchrun's process group when there is one, train; 0 on success, 1 on a clear error."""
    args = parse_args(argv)
    try:
        runtime = distributed.start(args.device)
    except DeviceError as exc:
        logging.basicConfig(format=LOG_FORMAT)
        log.error("%s", exc)
        return 1
    logging.basicConfig(level=logging.INFO if runtime.is_main else logging.WARNING, format=LOG_FORMAT)
    if dist.is_initialized():
        log.info("process group: %s backend, %d processes", dist.get_backend(), runtime.world_size)
    try:
        train(args, runtime, argv if argv is not None else sys.argv[1:])
    except (CheckpointError, DataError, StateError, FileExistsError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        distributed.stop(runtime)
    return 0


@dataclass(frozen=True)
class Datasets:
    """The training images, the held-out validation images (None with --val-samples 0) and the test set, where
    training reads them; checksums of the files as read from disk, and which training images were held out."""

    train: Split
    validation: Split | None
    test: Split
    checksums: dict[str, str]
    holdout: dict[str, object]
    outliers: torch.Tensor | None = None  # the non-digits of --rendered, for outlier exposure
    rendered: dict[str, object] | None = None  # what --rendered was (paths, checksums, counts)


@dataclass(frozen=True)
class Training:
    """The network and everything that updates it, built from the flags."""

    network: Net  # what is trained and restored (under torchrun `setup.model` is its DDP wrapper)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: DistributedSampler[int]  # this rank's shuffled share of the training images, reshuffled per epoch
    setup: TrainSetup
    test_batch_size: int

    def evaluate(self, split: Split) -> EvalStats:
        """Metrics of the evaluated network (the moving average, when on) as it is now; each rank evaluates its
        share and the results are summed."""
        runtime, amp_dtype = self.setup.runtime, self.setup.amp_dtype
        network = self.setup.evaluated
        return evaluate(network, split, runtime=runtime, batch_size=self.test_batch_size, amp_dtype=amp_dtype)


@dataclass
class Progress:
    """How far the run has got: what `--resume` restores and each finished epoch extends."""

    epochs_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def train(args: argparse.Namespace, runtime: distributed.Runtime, argv: list[str]) -> None:
    """One run, in four steps: load the data, build the model (restoring saved state with --resume), run the
    epochs, write the checkpoint and reports.

    The order is what same-seed reproducibility and exact resumption rest on: seed, then the network, sampler,
    optimiser and schedule, then the saved state, then the epochs, whose randomness depends only on their number.
    """
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if runtime.device.type == "cpu":
        keep_freed_memory()  # each step's activations reuse the last one's pages (see mnist_model.malloc)
    amp_dtype = pick_amp_dtype(args.amp, runtime.device)
    details = {"world_size": runtime.world_size, "device": str(runtime.device), "amp": str(amp_dtype)}
    log.info("config: %s", {**vars(args), **details, "threads": torch.get_num_threads()})

    data = load_data(args, runtime)
    training = build_training(args, runtime, data, amp_dtype)
    progress = resume(args, training) if args.resume else Progress()
    run_epochs(args, training, data, progress)
    if progress.epochs_done < args.epochs:
        log.info(
            "stopped after epoch %d of %d (--stop-after); continue with --resume", progress.epochs_done, args.epochs
        )
        return
    if runtime.is_main:
        final = evaluate_and_calibrate(
            training.setup.evaluated,
            data.test,
            data.validation,
            device=runtime.device,
            mean=training.setup.mean,
            std=training.setup.std,
            batch_size=args.test_batch_size,
        )
        write_outputs(args, argv, training, data, final, progress.history)


def load_data(args: argparse.Namespace, runtime: distributed.Runtime) -> Datasets:
    """Read both splits, hold out --val-samples training images, keep the first --max-train-samples of the rest,
    and move everything to a GPU once.

    Rank 0 extracts (or downloads) first so that ranks never race on the same files. On a GPU the 55 MB of uint8
    pixels stay there for the whole run, so batches are cut and augmented without a host-to-device copy each.
    """
    if not runtime.is_main:
        distributed.barrier(runtime)
    train_split, test_split = load_split(args.data_dir, train=True), load_split(args.data_dir, train=False)
    if runtime.is_main:
        distributed.barrier(runtime)
    checksums = {"train": train_split.sha256(), "test": test_split.sha256()}
    held_out = holdout_indices(len(train_split), args.val_samples, args.val_seed)
    holdout = {
        "source": "MNIST training set",
        "total": len(train_split),
        "count": args.val_samples,
        "seed": args.val_seed,
        "indices_sha256": indices_sha256(held_out),
    }
    train_split, validation = split_validation(train_split, held_out)
    if args.max_train_samples:
        train_split = Split(train_split.images[: args.max_train_samples], train_split.labels[: args.max_train_samples])
    rendered = load_rendered(*args.rendered).without(held_out) if args.rendered is not None else None
    if rendered is not None:
        train_split = Split(
            torch.cat([train_split.images, rendered.digits.images]),
            torch.cat([train_split.labels, rendered.digits.labels]),
        )
        log.info(
            "--rendered: %d rendered digits join the training images (%d rendered from held-out images left out); "
            "%d non-digits for outlier exposure",
            len(rendered.digits),
            rendered.dropped,
            len(rendered.outliers),
        )
    device = runtime.device if runtime.device.type == "cuda" else torch.device("cpu")
    return Datasets(
        outliers=rendered.outliers.to(device) if rendered is not None else None,
        rendered=rendered.describe() if rendered is not None else None,
        train=Split(train_split.images.to(device), train_split.labels.to(device)),
        validation=Split(validation.images.to(device), validation.labels.to(device)) if args.val_samples else None,
        test=Split(test_split.images.to(device), test_split.labels.to(device)),
        checksums=checksums,
        holdout=holdout,
    )


def build_training(
    args: argparse.Namespace, runtime: distributed.Runtime, data: Datasets, amp_dtype: torch.dtype | None
) -> Training:
    """The network (seeded: same initial weights on every rank), its DDP wrapper under torchrun, its moving average
    (--ema-decay), the sampler that shards the training images, AdamW and the one-cycle schedule over the run."""
    device, train_split = runtime.device, data.train
    torch.manual_seed(args.seed)  # DDP also broadcasts rank 0's weights; the seed makes runs repeatable
    network = Net().to(device)
    if args.init_from is not None:  # every rank loads the same file: the same start, as with the seed
        network.load_state_dict(load_checkpoint(args.init_from)[0].state_dict())
    model = (
        DistributedDataParallel(network, device_ids=[device] if device.type == "cuda" else None)
        if runtime.distributed
        else network
    )
    sampler: DistributedSampler[int] = DistributedSampler(
        cast("Dataset[int]", range(len(train_split))),  # it reads only len(): it yields indices, not images
        num_replicas=runtime.world_size,
        rank=runtime.rank,
        shuffle=True,
        seed=args.seed,
        drop_last=False,
    )
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    optimizer = OPTIMIZER(network.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = build_scheduler(optimizer, args.lr, args.epochs * steps_per_epoch)
    setup = TrainSetup(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        data=train_split,
        runtime=runtime,
        batch_size=args.batch_size,
        amp_dtype=amp_dtype,
        grad_scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        progress=not args.no_progress,
        augmentation=augmentation(args),
        label_smoothing=args.label_smoothing,
        ema=AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay)) if args.ema_decay else None,
        outliers=data.outliers,
        outlier_weight=args.outlier_weight,
        outlier_batch=args.outlier_batch,
        teacher=load_teacher(args.distill_from, data, device) if args.distill_from is not None else None,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        sam_rho=args.sam_rho,
    )
    return Training(network, scheduler, sampler, setup, args.test_batch_size)


def load_teacher(path: Path, data: Datasets, device: torch.device) -> Net:
    """The --distill-from network, in eval mode on `device`, its weights frozen.

    Refused (ValueError) unless it held out exactly this run's validation images: a teacher that trained on them
    would pass what it learnt of them on, and the validation figures that choose recipes would flatter the run.
    """
    teacher, metadata = load_checkpoint(path, device)
    if (metadata.mean, metadata.std) != (MNIST_MEAN, MNIST_STD):
        raise ValueError(
            f"--distill-from {path} normalises its inputs otherwise (mean {metadata.mean}, std "
            f"{metadata.std}) than this run ({MNIST_MEAN}, {MNIST_STD})"
        )
    if metadata.validation.get("indices_sha256") != data.holdout["indices_sha256"] or not data.holdout["count"]:
        raise ValueError(
            f"--distill-from {path} did not hold out this run's validation images (its record: "
            f"{ {key: metadata.validation.get(key) for key in ('count', 'seed')} }, this run: --val-samples "
            f"{data.holdout['count']} --val-seed {data.holdout['seed']}); distil from a checkpoint trained with the "
            "same --val-samples and --val-seed, so that the validation images stay unseen"
        )
    teacher.requires_grad_(False)
    return teacher


def resume(args: argparse.Namespace, training: Training) -> Progress:
    """Restore the weights, optimiser and schedule saved after the last finished epoch (--resume).

    A state saved with other run-shaping flags (RUN_SHAPING) is refused: continuing it would silently train a
    different run than the one the flags describe. A flag the state does not record (it predates the flag) counts as
    its default, the behaviour the run had.
    """
    state_path = state_path_for(args.output)
    state = load_state(state_path)
    check_compatible(shaping_defaults() | state["config"], run_config(args), RUN_SHAPING)
    training.network.load_state_dict(state["model"])
    training.setup.optimizer.load_state_dict(state["optimizer"])
    training.scheduler.load_state_dict(state["scheduler"])
    if training.setup.ema is not None:
        training.setup.ema.load_state_dict(state["ema"])
    log.info("resuming after epoch %d from %s", state["epoch"], state_path)
    if state["epoch"] >= args.epochs:
        log.info("the saved run already finished all %d epochs; writing its checkpoint again", args.epochs)
    return Progress(epochs_done=state["epoch"], history=state["history"])


def run_epochs(args: argparse.Namespace, training: Training, data: Datasets, progress: Progress) -> None:
    """Train the remaining epochs (or --stop-after of them), validating after each; rank 0 saves the state after each.

    Each epoch's randomness derives from (seed, epoch, rank) alone, so a resumed run draws exactly what an
    uninterrupted one would. The test set is not looked at here: it is measured once, after the last epoch.
    """
    runtime = training.setup.runtime
    last_epoch = min(args.epochs, progress.epochs_done + args.stop_after) if args.stop_after else args.epochs
    for epoch in range(progress.epochs_done + 1, last_epoch + 1):
        torch.manual_seed(args.seed * 1_000_003 + epoch * 1_009 + runtime.rank)
        augment_rng = None
        if not args.no_augment:
            augment_rng = torch.Generator(device=runtime.device).manual_seed(
                args.seed * 7_919 + epoch * 131 + runtime.rank
            )
        training.sampler.set_epoch(epoch)
        indices = torch.tensor(list(training.sampler), dtype=torch.long)
        shards = distributed.all_gather_1d(indices.to(runtime.device), runtime)
        description = f"epoch {epoch}/{args.epochs}"
        stats = train_epoch(training.setup, indices, generator=augment_rng, description=description)
        validation = training.evaluate(data.validation) if data.validation is not None else None
        progress.history.append(
            {
                "epoch": epoch,
                "train_loss": stats.loss,
                **({"val_loss": validation.loss, "val_accuracy": validation.accuracy} if validation else {}),
                "images_per_second": stats.images_per_second,
                "seconds": stats.seconds,
                "lr": training.scheduler.get_last_lr()[0],
                "world_size": runtime.world_size,
                "samples_per_rank": len(indices),
                "distinct_samples": len(torch.unique(torch.cat(shards))),
            }
        )
        progress.epochs_done = epoch
        log.info(
            "epoch %d/%d  train loss %.4f  %s  %.0f images/s  (%.1f s)",
            epoch,
            args.epochs,
            stats.loss,
            f"val loss {validation.loss:.4f}  val accuracy {100 * validation.accuracy:.2f}%" if validation else "",
            stats.images_per_second,
            stats.seconds,
        )
        if runtime.is_main:
            save_state(state_path_for(args.output), saved_state(args, training, progress))


def saved_state(args: argparse.Namespace, training: Training, progress: Progress) -> dict[str, Any]:
    """What --resume needs, as tensors and plain values only (it is read back with `weights_only=True`)."""
    return {
        "epoch": progress.epochs_done,
        "model": training.network.state_dict(),
        "optimizer": training.setup.optimizer.state_dict(),
        "scheduler": training.scheduler.state_dict(),
        **({"ema": training.setup.ema.state_dict()} if training.setup.ema is not None else {}),
        "history": progress.history,
        "config": run_config(args),
    }


if __name__ == "__main__":
    sys.exit(main())
