"""Calibration and "is this one digit?" on held-out data, with the targets of issue 11 next to each number.

    python -m benchmarks.confidence --checkpoint models/mnist_cnn.safetensors --data-dir data --workers 2

Prints: the expected calibration error (15 bins) on the MNIST test set before (T = 1) and after the checkpoint's
temperature; MNIST test accuracy; the share of the test split's non-digits flagged `is_digit: false`, per
category and overall (rendered on the fly, seeded: never exported, never tuned on; a non-digit that
preprocessing refuses gets no digit either and counts as flagged); the share of MNIST test digits (each sent as
a 28×28 PNG through `app.preprocess.inspect_upload`, as a client would upload it) and of each real-world style's
test digits falsely flagged. The model runs as the service runs it (`Predictor`, MNIST_SERVE_PRECISION=auto);
the gate is the checkpoint's (`app.gate`; fit it with `python -m app.gate.fit`).
"""

# ruff: noqa: T201  (a benchmark's printed table is its output)
from __future__ import annotations

import argparse
import functools
import io
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import MNIST
from tqdm import tqdm

from app.config import CPU_PRECISIONS, load_settings
from app.gate.features import cue_row, stack_cue_rows
from app.predictor import PROBABILITIES, Predictor
from app.preprocess import MAX_PIXELS, Cues, inspect_upload
from benchmarks.renders.export import Row, jobs, run_job
from mnist_model.calibration import apply_temperature, expected_calibration_error

TARGETS = {"flagged_overall": 0.90, "flagged_category": 0.80, "false_mnist": 0.01, "false_style": 0.03, "ece": 0.01}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.confidence",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("models/mnist_cnn.safetensors"), help="checkpoint")
    parser.add_argument("--data-dir", default="data", help="MNIST root (DIR/MNIST/raw)")
    parser.add_argument("--per-style", type=int, default=300, help="test digits rendered per real-world style")
    parser.add_argument("--per-category", type=int, default=200, help="test non-digits rendered per category")
    parser.add_argument("--seed", type=int, default=0, help="picks the test digits and render streams")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    parser.add_argument("--precision", default="auto", choices=CPU_PRECISIONS, help="model precision")
    return parser.parse_args(argv)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def gate_scores(predictor: Predictor, pixels: np.ndarray, cues: list[Cues], chunk: int = 512) -> tuple[np.ndarray, ...]:
    """(probabilities N×10, gate scores N) of preprocessed uploads, computed by the service's own `predict`: the
    cue rows it hands the model (None for an MNIST-format upload), batches of `chunk`."""
    if predictor.digit_gate is None:
        raise SystemExit(f"{predictor.path} has no digit gate: fit one with `python -m app.gate.fit`")
    rows = []
    for start in range(0, len(pixels), chunk):
        stop = min(start + chunk, len(pixels))
        chunk_cues = stack_cue_rows([cue_row(item) for item in cues[start:stop]])
        rows.append(predictor.predict(np.ascontiguousarray(pixels[start:stop]), chunk_cues).numpy())
    answers = np.concatenate(rows)
    return answers[:, :PROBABILITIES], answers[:, PROBABILITIES]


def render_test_split(args: argparse.Namespace) -> list[Row]:
    todo = list(jobs("test", args.per_style, args.per_category, args.seed, args.data_dir))
    work = functools.partial(run_job, split="test", data_dir=args.data_dir, max_pixels=MAX_PIXELS)
    with ProcessPoolExecutor(args.workers) as pool:
        results = pool.map(work, todo, chunksize=max(1, len(todo) // (args.workers * 16)))
        return list(tqdm(results, total=len(todo), desc="test renders", unit="upload"))


def verdict(value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    return f"{'≥' if at_least else '≤'} {target:.0%}  {'ok' if ok else 'MISSED'}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    predictor = Predictor(load_settings(model_path=args.checkpoint, device="cpu", precision=args.precision))
    test = MNIST(args.data_dir, train=False, download=False)
    images, labels = test.data.numpy(), test.targets.numpy()

    uploads = [inspect_upload(png(image)) for image in images]  # as a client sends them: 28×28 PNGs
    pixels = np.stack([pixels for pixels, _ in uploads])
    probabilities, scores = gate_scores(predictor, pixels, [cues for _, cues in uploads])
    threshold = predictor.digit_gate.threshold  # type: ignore[union-attr]  # checked in gate_scores
    log_probs = torch.from_numpy(probabilities).clamp_min(1e-30).log()  # calibrated: T applied by the predictor
    raw = apply_temperature(log_probs * predictor.temperature, 1.0)  # undo T: the uncalibrated probabilities
    labels_t = torch.from_numpy(labels)
    ece_before = expected_calibration_error(raw, labels_t)
    ece_after = expected_calibration_error(torch.from_numpy(probabilities), labels_t)
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    false_mnist = float((scores < threshold).mean())

    rows = render_test_split(args)
    kept = [row for row in rows if row.pixels is not None and row.cues is not None]
    kept_pixels = np.stack([row.pixels for row in kept if row.pixels is not None])
    _, render_scores = gate_scores(predictor, kept_pixels, [row.cues for row in kept if row.cues is not None])
    flagged = {id(row): bool(score < threshold) for row, score in zip(kept, render_scores, strict=True)}

    print(
        f"\nCalibration and not-a-digit gate: {args.checkpoint} (T = {predictor.temperature:.4f}, precision "
        f"{predictor.precision}, threshold {threshold:.4f})\n"
    )
    print(f"{'measure':<44} {'value':>8}   target")
    print(f"{'MNIST test accuracy':<44} {accuracy:>8.2%}   ≥ 99.50%  {'ok' if accuracy >= 0.995 else 'MISSED'}")
    print(f"{'ECE (15 bins), MNIST test, before (T = 1)':<44} {ece_before:>8.2%}")
    print(f"{'ECE (15 bins), MNIST test, after':<44} {ece_after:>8.2%}   {verdict(ece_after, TARGETS['ece'], False)}")
    print(
        f"{'MNIST test digits (28×28 PNG) falsely flagged':<44} {false_mnist:>8.2%}   "
        f"{verdict(false_mnist, TARGETS['false_mnist'], False)}"
    )
    digits = sorted({row.group for row in rows if row.label >= 0})
    for style in digits:
        members = [row for row in rows if row.group == style and row.label >= 0]
        answered = [row for row in members if row.pixels is not None]
        share = sum(flagged[id(row)] for row in answered) / max(len(answered), 1)
        refused = len(members) - len(answered)
        note = f" ({refused} refused by preprocessing)" if refused else ""
        print(
            f"{f'style {style}: digits falsely flagged':<44} {share:>8.2%}   "
            f"{verdict(share, TARGETS['false_style'], False)}{note}"
        )
    hits = total = 0
    for category in sorted({row.group for row in rows if row.label < 0}):
        members = [row for row in rows if row.group == category and row.label < 0]
        caught = sum(row.pixels is None or flagged[id(row)] for row in members)
        hits, total = hits + caught, total + len(members)
        print(
            f"{f'{category}: non-digits flagged':<44} {caught / len(members):>8.2%}   "
            f"{verdict(caught / len(members), TARGETS['flagged_category'], True)}"
        )
    print(
        f"{'all non-digits flagged':<44} {hits / max(total, 1):>8.2%}   "
        f"{verdict(hits / max(total, 1), TARGETS['flagged_overall'], True)}"
    )
    print(f"\n{len(images)} MNIST test digits, {len(rows)} test-split renders; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
