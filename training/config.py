"""Training's command line: the flags with their defaults in --help, their checks, and the config they make.

`python -m training.run --help` prints them; `training.run` turns them into a run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from mnist_model.device import DEVICE_CHOICES, parse_device
from training.data import default_data_dir

DEFAULT_OUTPUT = Path("models/mnist_cnn.safetensors")
RUN_SHAPING = ("epochs", "batch_size", "lr", "weight_decay", "seed", "max_train_samples", "no_augment")
"""Flags that shape the schedule, the data order or the randomness: a resumed run must keep them, and the
checkpoint records them as its hyperparameters."""


def build_parser() -> argparse.ArgumentParser:
    """Every flag, with a metavar and its default shown in --help (ArgumentDefaultsHelpFormatter)."""
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
    add("--device", default="auto", metavar="DEV", help=f"{DEVICE_CHOICES}; auto = CUDA if available, else CPU")
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
    try:
        args.device = parse_device(args.device)
    except ValueError as exc:
        parser.error(f"--device {exc}")
    return args


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as plain values (paths and unset options left out): saved with the state, compared on resume."""
    return {key: value for key, value in vars(args).items() if isinstance(value, int | float | str | bool)}
