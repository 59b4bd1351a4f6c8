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
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import shlex
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mnist_model import MNIST_MEAN, MNIST_STD, ModelMetadata, Net, save_checkpoint
from mnist_model.hardware import native_bf16
from training import distributed, reports
from training.data import DataError, Split, default_data_dir, load_split
from training.loop import evaluate, train_epoch
from training.state import StateError, check_compatible, load_state, save_state, state_path_for

log = logging.getLogger("training")

DEFAULT_OUTPUT = Path("models/mnist_cnn.safetensors")
# Settings that shape the schedule, the data order or the randomness: a resumed run must keep them.
ONE_CYCLE_WARMUP = 0.2
RESUME_MUST_MATCH = ("epochs", "batch_size", "lr", "weight_decay", "seed", "max_train_samples", "no_augment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.run",
        description="Train the MNIST CNN (one process, or DDP under torchrun) and write a safetensors checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        metavar="DIR",
        help="MNIST root: files under DIR/MNIST/raw, downloaded there when online (env MNIST_DATA_DIR)",
    )
    add("--epochs", type=int, default=15, metavar="N", help="epochs to train")
    add("--batch-size", type=int, default=128, metavar="N", help="images per step on each process")
    add("--test-batch-size", type=int, default=1000, metavar="N", help="images per evaluation step")
    add("--lr", type=float, default=3e-3, metavar="LR", help="peak learning rate of the one-cycle AdamW schedule")
    add("--weight-decay", type=float, default=0.01, metavar="WD", help="AdamW weight decay")
    add("--seed", type=int, default=1, metavar="S", help="random seed (runs on CPU are repeatable for a seed)")
    add(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help="checkpoint to write (.safetensors); training state, history and plots go next to it",
    )
    add("--resume", action="store_true", help="continue from the training state saved next to --output")
    add("--device", default="auto", metavar="DEV", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision: auto = bf16 on CUDA and on CPUs with native bf16, else off",
    )
    add(
        "--max-train-samples",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N training images only (quick runs and tests); default all 60,000",
    )
    add("--no-augment", action="store_true", help="disable random rotation/scale/shift of training batches")
    add("--num-threads", type=int, default=None, metavar="N", help="CPU threads per process (default: torch's)")
    add(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop after N epochs in this invocation (time-boxed jobs); continue later with --resume",
    )
    add("--no-progress", action="store_true", help="hide the per-batch progress bar")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and sanity-check flags; a bad value exits with status 2 and says which flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "test_batch_size", "max_train_samples", "num_threads", "stop_after"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if args.weight_decay < 0:
        parser.error(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.output.suffix != ".safetensors":
        parser.error(f"--output must end in .safetensors, got {args.output}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime = distributed.start(args.device)
    logging.basicConfig(
        level=logging.INFO if runtime.is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        train(args, runtime, argv if argv is not None else sys.argv[1:])
    except (DataError, StateError, FileExistsError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        distributed.stop(runtime)
    return 0


def train(args: argparse.Namespace, runtime: distributed.Runtime, argv: list[str]) -> None:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = runtime.device
    amp_dtype = pick_amp_dtype(args.amp, device)
    config = {key: value for key, value in vars(args).items() if isinstance(value, int | float | str | bool)}
    log.info(
        "config: %s",
        {
            **vars(args),
            "world_size": runtime.world_size,
            "device": str(device),
            "amp": str(amp_dtype),
            "threads": torch.get_num_threads(),
        },
    )

    # Data: rank 0 extracts (or downloads) first so that ranks never race on the same files.
    if not runtime.is_main:
        distributed.barrier(runtime)
    train_split, test_split = load_split(args.data_dir, train=True), load_split(args.data_dir, train=False)
    if runtime.is_main:
        distributed.barrier(runtime)
    if args.max_train_samples:
        train_split = Split(train_split.images[: args.max_train_samples], train_split.labels[: args.max_train_samples])
    checksums = {"train": train_split.sha256(), "test": test_split.sha256()}
    data_device = device if device.type == "cuda" else torch.device("cpu")  # 55 MB: fits on any GPU
    train_images, train_labels = train_split.images.to(data_device), train_split.labels.to(data_device)
    test_images, test_labels = test_split.images.to(data_device), test_split.labels.to(data_device)

    # Model, optimiser, one-cycle schedule over the whole run.
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    raw_model = Net().to(device)
    model = (
        DistributedDataParallel(raw_model, device_ids=[device] if device.type == "cuda" else None)
        if runtime.distributed
        else raw_model
    )
    sampler = DistributedSampler(
        range(len(train_split)),
        num_replicas=runtime.world_size,
        rank=runtime.rank,
        shuffle=True,
        seed=args.seed,
        drop_last=False,
    )
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    optimizer = torch.optim.AdamW(raw_model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = build_scheduler(optimizer, args.lr, args.epochs * steps_per_epoch)
    grad_scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    state_path = state_path_for(args.output)
    history: list[dict] = []
    first_epoch = 1
    if args.resume:
        state = load_state(state_path)
        check_compatible(state["config"], config, RESUME_MUST_MATCH)
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, first_epoch = state["history"], state["epoch"] + 1
        log.info("resuming after epoch %d from %s", state["epoch"], state_path)
        if first_epoch > args.epochs:
            log.info("the saved run already finished all %d epochs; writing its checkpoint again", args.epochs)

    evaluation = None
    last_epoch = min(args.epochs, first_epoch - 1 + args.stop_after) if args.stop_after else args.epochs
    for epoch in range(first_epoch, last_epoch + 1):
        # Randomness derives from (seed, epoch, rank): a resumed run draws exactly what an uninterrupted one would.
        torch.manual_seed(args.seed * 1_000_003 + epoch * 1_009 + runtime.rank)
        augment_rng = None
        if not args.no_augment:
            augment_rng = torch.Generator(device=device).manual_seed(args.seed * 7_919 + epoch * 131 + runtime.rank)
        sampler.set_epoch(epoch)
        indices = torch.tensor(list(sampler), dtype=torch.long)
        shards = distributed.all_gather_1d(indices.to(device), runtime)
        distinct = len(torch.unique(torch.cat(shards)))
        stats = train_epoch(
            model,
            optimizer,
            scheduler,
            train_images,
            train_labels,
            indices,
            args.batch_size,
            runtime,
            MNIST_MEAN,
            MNIST_STD,
            augment_rng,
            amp_dtype,
            grad_scaler,
            progress=not args.no_progress,
            description=f"epoch {epoch}/{args.epochs}",
        )
        evaluation = evaluate(
            raw_model, test_images, test_labels, runtime, MNIST_MEAN, MNIST_STD, args.test_batch_size, amp_dtype
        )
        row = {
            "epoch": epoch,
            "train_loss": stats.loss,
            "test_loss": evaluation.loss,
            "test_accuracy": evaluation.accuracy,
            "images_per_second": stats.images_per_second,
            "seconds": stats.seconds,
            "lr": scheduler.get_last_lr()[0],
            "world_size": runtime.world_size,
            "samples_per_rank": len(indices),
            "distinct_samples": distinct,
        }
        history.append(row)
        log.info(
            "epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  %.0f images/s  (%.1f s)",
            epoch,
            args.epochs,
            stats.loss,
            evaluation.loss,
            100 * evaluation.accuracy,
            stats.images_per_second,
            stats.seconds,
        )
        if runtime.is_main:
            save_state(
                state_path,
                {
                    "epoch": epoch,
                    "model": raw_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                    "config": config,
                },
            )

    if last_epoch < args.epochs:
        log.info("stopped after epoch %d of %d (--stop-after); continue with --resume", last_epoch, args.epochs)
        return
    if evaluation is None:  # resumed a run that had already finished: evaluate its weights once more
        evaluation = evaluate(
            raw_model, test_images, test_labels, runtime, MNIST_MEAN, MNIST_STD, args.test_batch_size, amp_dtype
        )
    if runtime.is_main:
        metadata = ModelMetadata(
            mean=MNIST_MEAN,
            std=MNIST_STD,
            epochs=args.epochs,
            test_accuracy=evaluation.accuracy,
            test_loss=evaluation.loss,
            per_class_accuracy=evaluation.per_class_accuracy,
            dataset_sha256=checksums,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command=launch_command(argv, runtime),
            seed=args.seed,
            hyperparameters={
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "world_size": runtime.world_size,
                "optimizer": "AdamW",
                "schedule": f"OneCycleLR(pct_start={ONE_CYCLE_WARMUP})",
                "lr": args.lr,
                "weight_decay": args.weight_decay,
                "augment": not args.no_augment,
                "amp": str(amp_dtype),
                "device": device.type,
                "train_samples": len(train_split),
            },
        )
        save_checkpoint(args.output, raw_model, metadata)
        write_reports(args.output, metadata, history, evaluation.confusion)
        log.info("wrote %s (test accuracy %.2f%%)", args.output, 100 * evaluation.accuracy)


def build_scheduler(
    optimizer: torch.optim.Optimizer, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle: warm up for the first 20 % of steps, then anneal; constant LR for runs too short to have phases."""
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    pct_start = min(0.5, max(ONE_CYCLE_WARMUP, 2 / total_steps))  # each phase needs at least two steps
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct_start)


def pick_amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """Resolve --amp: bf16 where the hardware computes it natively (its range needs no loss scaling)."""
    if choice == "off":
        return None
    if choice == "fp16":
        if device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or off on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if choice == "bf16" or native_bf16(device) else torch.float16
    return torch.bfloat16 if choice == "bf16" or native_bf16(device) else None


def launch_command(argv: list[str], runtime: distributed.Runtime) -> str:
    """The command line to put in the model card."""
    if runtime.distributed:
        nodes = int(os.environ.get("GROUP_WORLD_SIZE", "1"))
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", runtime.world_size))
        launcher = f"torchrun --nnodes={nodes} --nproc_per_node={per_node} -m training.run"
    else:
        launcher = "python -m training.run"
    return " ".join([launcher, shlex.join(argv)]).strip()


def write_reports(checkpoint: Path, metadata: ModelMetadata, history: list[dict], confusion: torch.Tensor) -> None:
    paths = reports.report_paths(checkpoint)
    reports.write_history(paths["history"], history)
    reports.plot_curves(paths["curves"], history)
    reports.plot_confusion(paths["confusion"], confusion)
    reports.write_model_card(paths["card"], checkpoint, metadata, history, confusion)


if __name__ == "__main__":
    sys.exit(main())
