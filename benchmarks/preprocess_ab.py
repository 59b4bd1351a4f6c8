"""Preprocessing before and after a change, in one process: the same uploads through both, alternating image by image.

    python -m benchmarks.preprocess_ab --base HEAD~1                          # every style, threshold renders
    python -m benchmarks.preprocess_ab --base 0609400 --side 1024 --styles canvas sheet
    python -m benchmarks.preprocess_ab --base HEAD --photos 50 --styles     # the 1024×768 photo JPEGs only

`--base` names a git revision: its `app/preprocess` is exported to a temporary folder and imported as a package of
its own beside the working tree's (`mnist_model` is shared: the checked-out one), and each upload goes through both,
the order alternating from upload to upload and pass to pass. On a shared VM whose speed drifts by 1.5× within
minutes, separate runs (`benchmarks.style_accuracy` before and after) compare the VM's moods as much as the code;
alternating gives each side the same moments. The first pass also compares the outputs: a change meant to be only
faster must give the same 28×28 pixels (or the same refusal) for every upload, and one meant to change them says
how many it did. Timed on the passes after the first; pin it to one core (`taskset -c 0`).

Uploads: `--per-style` renders of each style of `benchmarks.renders` (the `threshold` split by default: tune there,
report `test`), at their own sizes or re-encoded with their longer side `--side` px (`style_accuracy.at_side`); and
`--photos` 1024×768 photo JPEGs of the split's digits, made as `style_accuracy --timing` makes them
(`style_accuracy.photo_jpegs`; with `--split test`, the very files it times).
"""

# ruff: noqa: T201  (a benchmark's printed table is its output)
from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

import app.preprocess as current
from benchmarks.renders import SPLITS, STYLES, digit_pool, digit_renders
from benchmarks.style_accuracy import at_side, photo_jpegs
from mnist_model.malloc import keep_freed_memory

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "app/preprocess"
IMPORTS = re.compile(r"\b(from|import)\s+app\.preprocess\b")
"""The absolute imports of the package's own modules, which the exported copy must point at itself."""
PHOTOS = "photo JPEGs 1024×768"

Preprocess = Callable[[bytes], object]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--base", default="HEAD", metavar="REV", help="git revision whose preprocessing is the base")
    add_upload_arguments(parser)
    args = parser.parse_args(argv)
    if args.passes < 2:
        parser.error("--passes must be at least 2: the first is not timed")
    return args


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the uploads (`uploads_by_style`) and how often they pass: shared with
    `benchmarks.preprocess_steps`, which times the same uploads step by step."""
    parser.add_argument(
        "--styles",
        nargs="*",
        default=[style for style in STYLES if style != "mnist"],
        choices=list(STYLES),
        metavar="STYLE",
        help=f"render styles (of {' '.join(STYLES)}); none: only --photos",
    )
    parser.add_argument("--per-style", type=int, default=50, metavar="N", help="renders of each style")
    parser.add_argument("--photos", type=int, default=50, metavar="N", help="1024×768 photo JPEGs too; 0 = none")
    parser.add_argument(
        "--side", type=int, default=0, metavar="PX", help="re-encode renders at this longer side; 0 = own"
    )
    parser.add_argument("--passes", type=int, default=4, metavar="N", help="passes over the uploads, the first untimed")
    parser.add_argument("--split", default="threshold", choices=SPLITS, help="whose digits and random streams")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seeds the renders")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DIR", help="folder with MNIST/raw")


def export_base(revision: str, into: Path) -> ModuleType:
    """`app/preprocess` as of git `revision`, written under `into` and imported as a package of its own."""
    name = f"preprocess_base_{abs(hash((revision, str(into))))}"
    archive = into / "base.tar"
    with archive.open("wb") as out:
        exported = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, PACKAGE], stdout=out, stderr=subprocess.PIPE
        )
    if exported.returncode != 0:
        raise SystemExit(f"cannot export {PACKAGE} at {revision!r}: {exported.stderr.decode().strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    package = into / name
    (into / PACKAGE).rename(package)
    for source in package.glob("*.py"):
        source.write_text(IMPORTS.sub(lambda match: f"{match.group(1)} {name}", source.read_text()))
    sys.path.insert(0, str(into))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(into))


def outcome(preprocess: Preprocess, data: bytes) -> tuple[float, object]:
    """Seconds `preprocess` took on `data`, and what it gave: the pixels, or the refusal's message."""
    start = time.perf_counter()
    try:
        result: object = preprocess(data)
    except Exception as exc:  # noqa: BLE001  (a refusal is an outcome to compare, whichever copy's ImageError it is)
        result = f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - start, result


def same(one: object, other: object) -> bool:
    """Whether two outcomes are the same pixels, or the same refusal."""
    if isinstance(one, np.ndarray) or isinstance(other, np.ndarray):
        return isinstance(one, np.ndarray) and isinstance(other, np.ndarray) and bool(np.array_equal(one, other))
    return one == other


def compare(base: Preprocess, new: Preprocess, uploads: Sequence[bytes], passes: int) -> dict[str, float]:
    """Both on every upload, `passes` times, alternating which goes first; medians over the timed passes (ms) and how
    many uploads' outputs differ (first pass)."""
    times: dict[str, list[float]] = {"base": [], "new": []}
    differing = 0
    for turn in range(passes):
        for index, data in enumerate(uploads):
            order = [("base", base), ("new", new)]
            if (index + turn) % 2:
                order.reverse()
            results = {}
            for side, preprocess in order:
                seconds, results[side] = outcome(preprocess, data)
                if turn:
                    times[side].append(seconds)
            if turn == 0:
                differing += not same(results["base"], results["new"])
    base_ms, new_ms = (1000 * float(np.median(times[side])) for side in ("base", "new"))
    return {"base": base_ms, "new": new_ms, "ratio": new_ms / base_ms, "differing": differing, "n": len(uploads)}


def uploads_by_style(args: argparse.Namespace) -> dict[str, list[bytes]]:
    """The uploads to compare, by the label of their row: each style's renders, then the photo JPEGs."""
    pool = digit_pool(args.split, args.data_dir)
    found: dict[str, list[bytes]] = {}
    for style in args.styles:
        files = [item.data for item in digit_renders(style, args.split, args.per_style, args.seed, pool=pool)]
        found[f"{style} at {args.side} px" if args.side else style] = (
            [at_side(data, args.side) for data in files] if args.side else files
        )
    if args.photos:
        found[PHOTOS] = photo_jpegs(args.photos, pool.images)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    keep_freed_memory()  # as the service does (its model's loading does it there): steps reuse freed buffers
    uploads = uploads_by_style(args)
    with tempfile.TemporaryDirectory() as folder:
        base = export_base(args.base, Path(folder))
        print(
            f"base: {args.base} ({PACKAGE}); new: the working tree; {args.split} split, seed {args.seed}, "
            f"{args.passes} passes (the first untimed), alternating upload by upload"
        )
        print(f"{'uploads':26} {'n':>4} {'base ms':>8} {'new ms':>8} {'new/base':>8} {'outputs differing':>18}")
        for label, files in uploads.items():
            row = compare(base.to_mnist_pixels, current.to_mnist_pixels, files, args.passes)
            print(
                f"{label:26} {row['n']:>4} {row['base']:>8.2f} {row['new']:>8.2f} {row['ratio']:>7.3f}× "
                f"{row['differing']:>11} of {row['n']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
