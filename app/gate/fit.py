"""Fit a checkpoint's not-a-digit gate and write it into the checkpoint's metadata (tensors unchanged).

    python -m app.gate.fit --checkpoint models/mnist_cnn.safetensors \\
        --train data/renders-train.npz --threshold data/renders-threshold.npz --data-dir /tmp/mnistdata

Fitting data (the train split): the exported renders of `--train` (digits of every real-world style, non-digits
of every category; `benchmarks.renders.export`) and a seeded sample of MNIST training images 0–49,999. The
threshold is chosen on the threshold split (`--threshold` and MNIST training images 50,000–59,999): the highest
one at which at most `--mnist-budget` of the MNIST digits and `--style-budget` of each style's digits are
flagged, i.e. as many non-digits flagged as those budgets allow. The test split is never read. `--weight`
stresses groups in the fit (default: letters and symbols count twice among the non-digits: the categories that
look most like digits to the network; on the threshold split this flagged ~3 points more letters, with both
fitting seeds tried, and left every other rate within a point).

Features come from the serving code itself (`app.predictor.Predictor.gate_inputs` on the same device and precision
the service would use, `app.gate.features`); MNIST digits get the cues an upload of them as a 28×28 PNG gets.
Deterministic: the same files give the same gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import MNIST

from app.config import CPU_PRECISIONS, load_settings
from app.gate.digit_gate import DigitGate
from app.gate.features import CONV_FEATURES, FC1_FEATURES, cue_matrix
from app.gate.fitting import fit_gate, highest_safe_threshold
from app.predictor import Predictor
from app.preprocess.cues import CueNotes, Cues, measure_pixels
from mnist_model.checkpoint import read_metadata, write_metadata

log = logging.getLogger("app.gate.fit")

MNIST_TRAIN_END = 50_000
"""MNIST training images [0, 50,000) belong to the train split, [50,000, 60,000) to the threshold split."""
CUE_TYPES = {field.name: field.type for field in dataclasses.fields(Cues)}


@dataclass(frozen=True)
class Examples:
    """Uploads after preprocessing: pixels, cues, whether each is a digit, and its group (style or category)."""

    pixels: np.ndarray  # N×28×28 uint8
    cues: list[Cues]
    is_digit: np.ndarray  # N bool
    group: np.ndarray  # N str
    refused: dict[str, int]  # uploads preprocessing refused, per group

    @staticmethod
    def concat(parts: Sequence[Examples]) -> Examples:
        refused: dict[str, int] = {}
        for part in parts:
            for group, count in part.refused.items():
                refused[group] = refused.get(group, 0) + count
        return Examples(
            np.concatenate([part.pixels for part in parts]),
            [cue for part in parts for cue in part.cues],
            np.concatenate([part.is_digit for part in parts]),
            np.concatenate([part.group for part in parts]),
            refused,
        )


def mnist_cues(pixels: np.ndarray) -> list[Cues]:
    """The cues `inspect_upload` gives MNIST-format uploads (measured on the 28×28 image, all at once); the gate
    sees only constants for them (`app.gate.features.MNIST_FORMAT_CUES`), as the service does."""
    return [CueNotes().complete(row) for row in measure_pixels(pixels)]


def load_export(path: Path) -> Examples:
    """An `.npz` written by `benchmarks.renders.export`."""
    with np.load(path, allow_pickle=False) as data:
        columns = {name: data[f"cue_{name}"] for name in CUE_TYPES}
        cues = [
            Cues(**{name: _cast(name, columns[name][index]) for name in CUE_TYPES})  # type: ignore[arg-type]
            for index in range(len(data["label"]))
        ]
        groups, counts = np.unique(data["refused_group"], return_counts=True)
        return Examples(
            data["pixels"],
            cues,
            data["label"] >= 0,
            data["group"].astype(str),
            dict(zip(groups.tolist(), counts.tolist(), strict=True)),
        )


def _cast(name: str, value: np.generic) -> object:
    kind = CUE_TYPES[name]
    return bool(value) if kind == "bool" else int(value) if kind == "int" else float(value)


def load_mnist(data_dir: Path, indices: np.ndarray) -> Examples:
    """MNIST training images at `indices`, as MNIST-format uploads (group `mnist`)."""
    try:
        images = MNIST(str(data_dir), train=True, download=False).data.numpy()
    except (RuntimeError, OSError) as exc:
        raise SystemExit(f"MNIST not found under {data_dir}/MNIST/raw ({exc}); pass --data-dir") from exc
    pixels = np.ascontiguousarray(images[indices])
    return Examples(pixels, mnist_cues(pixels), np.ones(len(pixels), bool), np.full(len(pixels), "mnist"), {})


def feature_matrix(predictor: Predictor, examples: Examples, chunk: int = 512) -> np.ndarray:
    """N×F features in `FEATURE_NAMES` order: the network's (as served) next to the cues'."""
    network = [
        predictor.gate_inputs(np.ascontiguousarray(examples.pixels[start : start + chunk]))[1].astype(np.float64)
        for start in range(0, len(examples.pixels), chunk)
    ]
    return np.concatenate([np.concatenate(network), cue_matrix(examples.cues)], axis=1)


def rates(scores: np.ndarray, examples: Examples, threshold: float) -> dict[str, object]:
    """Per group: digits falsely flagged (share scoring below `threshold`) or non-digits flagged; non-digits that
    preprocessing refused count as flagged (they get no digit either)."""
    flagged = scores < threshold
    per_group: dict[str, float] = {}
    for group in sorted(set(examples.group.tolist()) | set(examples.refused)):
        members = examples.group == group
        refused = examples.refused.get(group, 0)
        digits = bool(examples.is_digit[members].all()) if members.any() else False
        hits = int(flagged[members].sum()) + (0 if digits else refused)
        per_group[group] = round(hits / max(int(members.sum()) + (0 if digits else refused), 1), 4)
    nondigit = ~examples.is_digit
    refused_nondigits = sum(count for group, count in examples.refused.items() if group not in _digit_groups(examples))
    overall = (int(flagged[nondigit].sum()) + refused_nondigits) / max(int(nondigit.sum()) + refused_nondigits, 1)
    return {"non_digits_flagged": round(overall, 4), "per_group": per_group}


def _digit_groups(examples: Examples) -> set[str]:
    return set(examples.group[examples.is_digit].tolist())


def file_record(path: Path) -> dict[str, object]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": path.name, "sha256": digest}


def fit(args: argparse.Namespace) -> DigitGate:
    """Fit on the train split, choose the threshold on the threshold split; the gate with its record."""
    started = time.perf_counter()
    settings = load_settings(model_path=args.checkpoint, device=args.device, precision=args.precision)
    predictor = Predictor(settings, with_gate=False)  # the stored gate is replaced, usable or not
    rng = np.random.default_rng(args.seed)
    mnist_train = np.sort(rng.choice(MNIST_TRAIN_END, size=args.mnist_train, replace=False))
    train = Examples.concat([*(load_export(path) for path in args.train), load_mnist(args.data_dir, mnist_train)])
    held = Examples.concat([load_export(args.threshold), load_mnist(args.data_dir, np.arange(MNIST_TRAIN_END, 60_000))])
    log.info("features of %d train and %d threshold-split uploads", len(train.group), len(held.group))
    train_x, held_x = feature_matrix(predictor, train), feature_matrix(predictor, held)
    by_group = dict(_group_weight(item) if isinstance(item, str) else item for item in args.weight)
    weights = np.array([by_group.get(group, 1.0) for group in train.group.tolist()])
    means = slice(len(FC1_FEATURES), len(FC1_FEATURES) + len(CONV_FEATURES))
    components = None if args.mean_components >= len(CONV_FEATURES) else (means, args.mean_components)
    gate = fit_gate(
        train_x, train.is_digit, hidden=args.hidden, l2=args.l2, seed=args.seed, weights=weights, components=components
    )
    scores = gate.scores(held_x)
    budgets = {group: args.mnist_budget if group == "mnist" else args.style_budget for group in _digit_groups(held)}
    digit_scores = {group: scores[held.group == group] for group in budgets}
    threshold = highest_safe_threshold(digit_scores, budgets)
    record: dict[str, object] = {
        "fitted_on": {
            "train": [file_record(path) for path in args.train],
            "train_uploads": int((train.group != "mnist").sum()),
            "mnist_train": {"images": args.mnist_train, "from": [0, MNIST_TRAIN_END], "seed": args.seed},
            "threshold": file_record(args.threshold) | {"uploads": int((held.group != "mnist").sum())},
            "mnist_threshold": {"images": 60_000 - MNIST_TRAIN_END, "from": [MNIST_TRAIN_END, 60_000]},
            "precision": predictor.precision,
            "hidden": args.hidden,
            "mean_components": min(args.mean_components, len(CONV_FEATURES)),
            "l2": args.l2,
            "weights": by_group,
        },
        "budgets": {"mnist": args.mnist_budget, "style": args.style_budget},
        "threshold_split": rates(scores, held, threshold),
        "train_split": rates(gate.scores(train_x), train, threshold),
        "command": " ".join(["python -m app.gate.fit", *sys.argv[1:]]),
    }
    log.info(
        "fitted in %.0f s; threshold split: %s", time.perf_counter() - started, json.dumps(record["threshold_split"])
    )
    return dataclasses.replace(gate, threshold=threshold, record=record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.gate.fit",
        description="Fit the not-a-digit gate of a checkpoint and store it in the checkpoint's metadata.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="the .safetensors checkpoint (rewritten)")
    parser.add_argument(
        "--train", type=Path, nargs="+", required=True, help="exported train-split renders (.npz files)"
    )
    parser.add_argument("--threshold", type=Path, required=True, help="exported threshold-split renders (.npz)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="folder with MNIST/raw")
    parser.add_argument("--output", type=Path, default=None, help="write here instead of over --checkpoint")
    parser.add_argument("--mnist-train", type=int, default=10_000, help="MNIST images 0–49,999 sampled for fitting")
    parser.add_argument("--mnist-budget", type=float, default=0.005, help="most MNIST digits flagged (threshold split)")
    parser.add_argument("--style-budget", type=float, default=0.02, help="most digits of any style flagged (same)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of the gate's perceptron")
    parser.add_argument(
        "--mean-components",
        type=_at_least_one,
        default=16,
        help="principal components of the 64 channel means the gate sees (64: all; fewer: cheaper to serve)",
    )
    parser.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MNIST sample and the initial weights")
    parser.add_argument(
        "--weight",
        type=_group_weight,
        nargs="*",
        default=["letters=2", "symbols=2"],
        metavar="GROUP=W",
        help="weight of a group's examples within their class (others 1); none: all equal",
    )
    parser.add_argument("--device", default="cpu", help="device of the forward passes, as MNIST_SERVE_DEVICE")
    parser.add_argument("--precision", default="auto", choices=CPU_PRECISIONS, help="as MNIST_SERVE_PRECISION")
    parser.add_argument("--dry-run", action="store_true", help="fit and log, write nothing")
    return parser


def _at_least_one(text: str) -> int:
    """A whole number ≥ 1 (argparse's type for --mean-components)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return number


def _group_weight(text: str) -> tuple[str, float]:
    """`GROUP=W` of --weight, W a positive number (argparse leaves the default's strings to `fit`)."""
    group, _, number = text.partition("=")
    try:
        weight = float(number)
    except ValueError:
        weight = 0.0
    if not group or not weight > 0:
        raise argparse.ArgumentTypeError(f"expected GROUP=W with W > 0 (e.g. letters=2), got {text!r}")
    return group, weight


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gate = fit(args)
    if args.dry_run:
        return
    output = args.output or args.checkpoint
    if output != args.checkpoint:
        output.write_bytes(args.checkpoint.read_bytes())
    metadata = dataclasses.replace(read_metadata(output), digit_gate=gate.to_metadata())
    write_metadata(output, metadata)
    log.info("wrote the gate into %s", output)


if __name__ == "__main__":
    main()
