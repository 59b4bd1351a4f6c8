"""Training's command line: the flags with their defaults in --help, their checks, and the config they make.

`python -m training.run --help` prints them; `training.run` turns them into a run.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from pathlib import Path
from typing import Any

from mnist_model.device import DEVICE_CHOICES, parse_device
from training.augment import Augmentation
from training.data import default_data_dir
from training.sharpness import NOT_WITH_FP16

DEFAULT_OUTPUT = Path("models/mnist_cnn.safetensors")
AUGMENT_FLAGS = {
    "rotate": "max_rotation_deg",
    "scale": "max_scale",
    "shift": "max_shift",
    "elastic_p": "elastic_probability",
    "elastic_alpha": "elastic_alpha",
    "elastic_sigma": "elastic_sigma",
    "stroke_p": "stroke_probability",
    "stroke_strength": "stroke_strength",
}
"""Augmentation flags (argparse names) → `Augmentation` fields."""
RUN_SHAPING = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "label_smoothing",
    "sam_rho",
    "ema_decay",
    "seed",
    "val_samples",
    "val_seed",
    "max_train_samples",
    "no_augment",
    "outlier_weight",
    "outlier_batch",
    "distill_weight",
    "distill_temperature",
    *AUGMENT_FLAGS,
)
"""Flags that shape the schedule, the data, the loss or the randomness: a resumed run must keep them, and the
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
    add("--epochs", type=int, default=60, metavar="N", help="epochs to train")
    add("--batch-size", type=int, default=128, metavar="N", help="images per step on each process")
    add("--test-batch-size", type=int, default=1000, metavar="N", help="images per evaluation step")
    add("--lr", type=float, default=3e-3, metavar="LR", help="peak learning rate of the one-cycle AdamW schedule")
    add("--weight-decay", type=float, default=0.01, metavar="WD", help="AdamW weight decay")
    add(
        "--label-smoothing",
        type=float,
        default=0.0,
        metavar="E",
        help="share of each target spread over all classes (temperature scaling re-calibrates afterwards)",
    )
    add(
        "--sam-rho",
        type=float,
        default=0.0,
        metavar="R",
        help="sharpness-aware minimisation (Foret et al. 2021): take each step's gradient at the weights moved this "
        "far up the gradient (e.g. 0.05; a second forward and backward pass a step); 0 = off",
    )
    add(
        "--ema-decay",
        type=float,
        default=0.999,
        metavar="D",
        help="evaluate and save an exponential moving average of the weights, updated every step; 0 = off",
    )
    add("--seed", type=int, default=1, metavar="S", help="random seed (runs on CPU are repeatable for a seed)")
    add(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help="checkpoint to write (.safetensors); training state, history and plots go next to it",
    )
    add("--resume", action="store_true", help="continue from the training state saved next to --output")
    add(
        "--init-from",
        type=Path,
        default=None,
        metavar="CKPT",
        help="start from this checkpoint's weights instead of random ones (fine-tuning: e.g. the shipped model on "
        "more --rendered uploads, with a lower --lr and fewer --epochs); its file's version is recorded",
    )
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
        help="train on the first N training images not held out (quick runs and tests); default all of them",
    )
    add(
        "--val-samples",
        type=int,
        default=5000,
        metavar="N",
        help="training images held out (never trained on) for per-epoch validation and calibration; 0 = none",
    )
    add(
        "--val-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed choosing the held-out images; independent of --seed, so runs are compared on the same images",
    )
    add(
        "--rendered",
        type=Path,
        nargs="+",
        default=None,
        metavar="NPZ",
        help="one or more files of uploads rendered and preprocessed as the service does (`python -m "
        "benchmarks.renders.export --split train`): their digits join the training images, their non-digits feed "
        "--outlier-weight",
    )
    add(
        "--outlier-weight",
        type=float,
        default=0.5,
        metavar="W",
        help="weight of outlier exposure: the cross-entropy to the uniform distribution on --rendered's non-digits, "
        "added to the loss (needs --rendered; 0 = off)",
    )
    add("--outlier-batch", type=int, default=32, metavar="N", help="non-digits per step for --outlier-weight")
    add(
        "--distill-from",
        type=Path,
        default=None,
        metavar="CKPT",
        help="a trained checkpoint to learn from as well as from the labels (knowledge distillation: its softened "
        "answers on each augmented batch become targets); it must have held out the same validation images as "
        "this run, so that they stay unseen",
    )
    add(
        "--distill-weight",
        type=float,
        default=0.5,
        metavar="W",
        help="share of the loss that is the distillation term, the rest being the labels' cross-entropy (needs "
        "--distill-from)",
    )
    add(
        "--distill-temperature",
        type=float,
        default=4.0,
        metavar="T",
        help="temperature both networks' answers are softened by in the distillation term",
    )
    add("--no-augment", action="store_true", help="train on the images as they are (no flag below applies)")
    aug = parser.add_argument_group("augmentation (whole batches on the training device)")
    defaults = Augmentation()
    aug.add_argument(
        "--rotate", type=float, default=defaults.max_rotation_deg, metavar="DEG", help="random rotation within ±DEG"
    )
    aug.add_argument("--scale", type=float, default=defaults.max_scale, metavar="F", help="random scale within 1 ± F")
    aug.add_argument(
        "--shift", type=float, default=defaults.max_shift, metavar="F", help="random shift within ± F of the side"
    )
    aug.add_argument(
        "--elastic-p",
        type=float,
        default=defaults.elastic_probability,
        metavar="P",
        help="share of images also given an elastic distortion (Simard et al. 2003)",
    )
    aug.add_argument(
        "--elastic-alpha",
        type=float,
        default=defaults.elastic_alpha,
        metavar="PX",
        help="strength of the elastic displacement field, in pixels",
    )
    aug.add_argument(
        "--elastic-sigma",
        type=float,
        default=defaults.elastic_sigma,
        metavar="PX",
        help="smoothness of the elastic field (Gaussian sigma, pixels)",
    )
    aug.add_argument(
        "--stroke-p",
        type=float,
        default=defaults.stroke_probability,
        metavar="P",
        help="share of images whose strokes are thickened or thinned (half each)",
    )
    aug.add_argument(
        "--stroke-strength",
        type=float,
        default=defaults.stroke_strength,
        metavar="S",
        help="largest stroke change: 1 = a full grey dilation (about +2 px) or erosion (about -1 px)",
    )
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
    for name in (
        "epochs",
        "batch_size",
        "test_batch_size",
        "max_train_samples",
        "num_threads",
        "stop_after",
        "outlier_batch",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    for name in ("weight_decay", "val_samples", "rotate", "scale", "shift", "elastic_alpha", "outlier_weight"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("label_smoothing", "ema_decay", "elastic_p", "stroke_p", "stroke_strength", "distill_weight"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(args, name)}")
    if args.ema_decay == 1:
        parser.error("--ema-decay 1 would never move from the initial weights; use a value below 1, or 0 for off")
    if args.scale >= 1:
        parser.error(f"--scale must be below 1 (a scale of 1 - F must stay positive), got {args.scale}")
    if args.elastic_sigma <= 0:
        parser.error(f"--elastic-sigma must be positive, got {args.elastic_sigma}")
    if not (args.sam_rho >= 0 and math.isfinite(args.sam_rho)):
        parser.error(f"--sam-rho must be a number >= 0, got {args.sam_rho}")
    if args.sam_rho > 0 and args.amp == "fp16":
        parser.error(NOT_WITH_FP16)
    if not (args.distill_temperature > 0 and math.isfinite(args.distill_temperature)):
        parser.error(f"--distill-temperature must be a positive number, got {args.distill_temperature}")
    if args.rendered is None:
        args.outlier_weight = 0.0  # nothing to expose the network to: record the run as what it is
    if args.distill_from is None:
        args.distill_weight = 0.0  # no teacher: record the run as what it is
    for name in ("init_from", "distill_from"):
        path = getattr(args, name)
        if path is not None and path.suffix != ".safetensors":
            parser.error(f"--{name.replace('_', '-')} must be a .safetensors checkpoint, got {path}")
    if args.output.suffix != ".safetensors":
        parser.error(f"--output must end in .safetensors, got {args.output}")
    try:
        args.device = parse_device(args.device)
    except ValueError as exc:
        parser.error(f"--device {exc}")
    return args


def shaping_defaults() -> dict[str, Any]:
    """Each RUN_SHAPING flag's default: what a run saved before the flag existed ran with (every flag added since
    defaults to the behaviour before it), so a state without the key compares as if it had recorded the default."""
    parser = build_parser()
    return {name: parser.get_default(name) for name in RUN_SHAPING}


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as plain values (paths and unset options left out): saved with the state, compared on resume."""
    return {key: value for key, value in vars(args).items() if isinstance(value, int | float | str | bool)}


def augmentation(args: argparse.Namespace) -> Augmentation | None:
    """The augmentation the flags ask for; None with --no-augment."""
    if args.no_augment:
        return None
    return Augmentation(**{field: getattr(args, flag) for flag, field in AUGMENT_FLAGS.items()})


NOT_SHAPING_OUTPUT = {"--resume": 0, "--stop-after": 1}
"""Flags (with how many values follow) that never change what a run ends with: a stopped and resumed run ends
exactly as an uninterrupted one, so the recorded command leaves them out."""


def launch_command(argv: list[str], distributed: bool, world_size: int) -> str:
    """The command that reproduces the checkpoint, for its metadata and model card."""
    if distributed:
        nodes = int(os.environ.get("GROUP_WORLD_SIZE", "1"))
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        launcher = f"torchrun --nnodes={nodes} --nproc_per_node={per_node} -m training.run"
    else:
        launcher = "python -m training.run"
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=", 1)[0] in NOT_SHAPING_OUTPUT:
            skip = 0 if "=" in arg else NOT_SHAPING_OUTPUT[arg]
        else:
            kept.append(arg)
    return " ".join([launcher, shlex.join(kept)]).strip()
