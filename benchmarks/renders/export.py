"""Renders of one split through the service's own preprocessing, saved as 28×28 arrays for training and tuning.

    python -m benchmarks.renders.export --split train --out data/renders-train.npz
    python -m benchmarks.renders.export --split threshold --per-style 300 --per-category 300 \\
        --out data/renders-threshold.npz

Why a file: rendering costs 0.1–0.4 s per upload, far more than a training step, and what the model must learn
is what preprocessing makes of an upload, not the upload. So the digits of every style but `mnist` (MNIST itself
is the training set) and the non-digits of every category are rendered once, run through
`app.preprocess.inspect_upload` (the exact serving path), and stored with their cues; training mixes the digits
in and learns to be unsure on the non-digits, and thresholds are fitted on the `threshold` file. Only the
`train` and `threshold` splits can be exported: the test split is for reporting only.

The `.npz` holds, one row per upload that preprocessing accepted: `pixels` (N×28×28 uint8), `label` (the digit,
or -1 for a non-digit), `group` (the style of a digit, the category of a non-digit), `style` (the render style),
`seed`, `mnist_index` (the source digit's position in MNIST's training file, -1 for a non-digit: training drops
the renders of its held-out validation digits), and one array per `Cues` field (`cue_parts`, ...); plus
`refused_group` / `refused_status` for the uploads preprocessing answered with an error (a blank-looking
scribble, say), which a benchmark counts too.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from app.preprocess import ImageError, inspect_upload
from app.preprocess.cues import Cues
from benchmarks.renders.nondigits import CATEGORIES, render_nondigit
from benchmarks.renders.sets import pick_digits, render_seed
from benchmarks.renders.splits import digit_pool
from benchmarks.renders.styles import STYLES, render

log = logging.getLogger("benchmarks.renders.export")
EXPORTABLE_SPLITS = ("train", "threshold")
DIGIT_STYLES = tuple(style for style in STYLES if style != "mnist")
CUE_FIELDS = tuple(field.name for field in dataclasses.fields(Cues))

Job = tuple[str, str, int, int]
"""(kind "digit"/"nondigit", style or category, pool index or item number, seed)."""


@dataclass(frozen=True)
class Row:
    """One rendered upload after preprocessing: its pixels and cues, or the status it was refused with."""

    group: str
    label: int
    style: str
    seed: int
    mnist_index: int  # the source digit's position in MNIST's training file; -1 for a non-digit
    pixels: np.ndarray | None
    cues: Cues | None
    status: int | None


def jobs(
    split: str,
    per_style: int,
    per_category: int,
    seed: int,
    data_dir: str,
    categories: Sequence[str] = CATEGORIES,
    styles: Sequence[str] = DIGIT_STYLES,
) -> Iterator[Job]:
    """Every upload to render: the same digits in each of `styles` (as the benchmark picks them), then non-digits
    of `categories`."""
    pool = digit_pool(split, data_dir)
    for style in styles:
        for index in pick_digits(len(pool), per_style, seed):
            yield "digit", style, int(index), render_seed(seed, style, int(index))
    for category in categories:
        for k in range(per_category):
            yield "nondigit", category, k, seed * 1_000_003 + k


def run_job(job: Job, split: str, data_dir: str, max_pixels: int) -> Row:
    """Render one upload and preprocess it exactly as the service does."""
    kind, name, index, seed = job
    pool = digit_pool(split, data_dir)
    if kind == "digit":
        data, label, style = render(name, pool.images[index], seed, split), int(pool.labels[index]), name
        source = int(pool.mnist_indices[index])
    else:
        nondigit = render_nondigit(name, seed, split, pool=pool)
        data, label, style, source = nondigit.data, -1, nondigit.style, -1
    try:
        pixels, cues = inspect_upload(data, max_pixels)
    except ImageError as exc:
        return Row(name, label, style, seed, source, None, None, exc.status_code)
    return Row(name, label, style, seed, source, pixels, cues, None)


def export(
    split: str,
    out: Path,
    *,
    per_style: int,
    per_category: int,
    seed: int,
    data_dir: str,
    workers: int,
    categories: Sequence[str] = CATEGORIES,
    styles: Sequence[str] = DIGIT_STYLES,
) -> dict[str, int]:
    """Write the split's file; returns how many uploads of each group preprocessing accepted."""
    if split not in EXPORTABLE_SPLITS:
        raise ValueError(f"only {EXPORTABLE_SPLITS} can be exported; the test split is for reporting only")
    from app.preprocess import MAX_PIXELS

    todo = list(jobs(split, per_style, per_category, seed, data_dir, categories, styles))
    with ProcessPoolExecutor(workers) as pool:
        chunks = max(1, len(todo) // (workers * 16))
        work = functools.partial(run_job, split=split, data_dir=data_dir, max_pixels=MAX_PIXELS)
        results = pool.map(work, todo, chunksize=chunks)
        rows = list(tqdm(results, total=len(todo), desc=f"{split} renders", unit="upload"))
    kept = [(row, row.pixels, row.cues) for row in rows if row.pixels is not None and row.cues is not None]
    refused = [row for row in rows if row.pixels is None]
    columns: dict[str, Any] = {
        "pixels": np.stack([pixels for _, pixels, _ in kept]).astype(np.uint8),
        "label": np.array([row.label for row, _, _ in kept], np.int64),
        "group": np.array([row.group for row, _, _ in kept]),
        "style": np.array([row.style for row, _, _ in kept]),
        "seed": np.array([row.seed for row, _, _ in kept], np.int64),
        "mnist_index": np.array([row.mnist_index for row, _, _ in kept], np.int64),
        "refused_group": np.array([row.group for row in refused], dtype=str),
        "refused_status": np.array([row.status for row in refused], np.int64),
    }
    for name in CUE_FIELDS:
        columns[f"cue_{name}"] = np.array([getattr(cues, name) for _, _, cues in kept])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **columns)
    counts = {str(group): int(n) for group, n in zip(*np.unique(columns["group"], return_counts=True), strict=True)}
    log.info("wrote %s: %d uploads kept, %d refused by preprocessing", out, len(kept), len(refused))
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.renders.export",
        description="Render a split's digits and non-digits, preprocess them as the service does, save 28×28 arrays.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--split", choices=EXPORTABLE_SPLITS, default="train", help="which split to render")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="the .npz file to write")
    parser.add_argument("--per-style", type=int, default=1000, metavar="N", help="digits per style (not mnist)")
    parser.add_argument("--per-category", type=int, default=1000, metavar="N", help="non-digits per category")
    parser.add_argument(
        "--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES), help="non-digit categories to render"
    )
    parser.add_argument(
        "--styles",
        nargs="+",
        choices=DIGIT_STYLES,
        default=list(DIGIT_STYLES),
        help="digit styles to render (more of the hard ones, say)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="picks the digits and render streams")
    parser.add_argument("--data-dir", default="data", metavar="DIR", help="MNIST root (DIR/MNIST/raw)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="rendering processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    counts = export(
        args.split,
        args.out,
        per_style=args.per_style,
        per_category=args.per_category,
        seed=args.seed,
        data_dir=args.data_dir,
        workers=args.workers,
        categories=args.categories,
        styles=args.styles,
    )
    log.info("kept per group: %s", counts)


if __name__ == "__main__":
    main()
