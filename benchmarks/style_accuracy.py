"""Accuracy of preprocessing + model on realistic renders of MNIST test digits, one row per upload style.

    python -m benchmarks.style_accuracy --checkpoint models/mnist_cnn.safetensors --per-style 1000 \
        --data-dir data

Renders `--per-style` test digits in each style of `benchmarks.renders` (seeded, so reruns see the same
images), runs `app.preprocess.preprocess` and the model on them, and prints accuracy and preprocessing time
per image. For the raw `mnist` style it also prints how often the prediction equals the model's on the
untouched test digit. `--timing` adds the cost of preprocessing realistic 1024×768 photo JPEGs (the common
phone-upload case).
"""

# ruff: noqa: T201  (a benchmark's printed table is its output)
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.config import Settings
from app.predictor import Predictor
from app.preprocess import ImageError, preprocess, to_mnist_pixels
from benchmarks.renders import STYLES, render, render_photo
from mnist_model import normalize
from training.data import load_split


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("models/mnist_cnn.safetensors"),
        metavar="PATH",
        help="model checkpoint (default: models/mnist_cnn.safetensors)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        metavar="DIR",
        help="folder with MNIST/raw/*.gz (default: data)",
    )
    parser.add_argument(
        "--per-style",
        type=int,
        default=1000,
        metavar="N",
        help="test digits rendered per style (default: 1000)",
    )
    parser.add_argument(
        "--styles",
        nargs="+",
        default=list(STYLES),
        choices=list(STYLES),
        metavar="STYLE",
        help=f"styles to measure (default: all of {' '.join(STYLES)})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="picks the digits and seeds the renders (default: 0)"
    )
    parser.add_argument(
        "--timing",
        type=int,
        default=50,
        metavar="N",
        help="1024×768 photo JPEGs to time preprocessing on; 0 skips (default: 50)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="model dtype, as the service's MNIST_SERVE_PRECISION (default: auto, the service's default)",
    )
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads for the model (default: 1)")
    parser.add_argument(
        "--dump-errors",
        type=Path,
        default=None,
        metavar="DIR",
        help="save misread renders and their 28×28 result here (default: off)",
    )
    return parser.parse_args(argv)


def render_seed(seed: int, style: str, index: int) -> int:
    """A distinct, reproducible render seed per (run seed, style, test digit)."""
    return (seed * 1_000_003 + list(STYLES).index(style) * 100_000 + index) % 2**32


def predict(model: Predictor, batch: list[torch.Tensor]) -> np.ndarray:
    """Predicted digits for a list of 1×28×28 normalised tensors, computed exactly as the service does."""
    if not batch:
        return np.zeros(0, np.int64)
    return model.predict(batch).argmax(dim=1).numpy()


def measure_style(
    style: str,
    model: Predictor,
    mean: float,
    std: float,
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: np.ndarray,
    seed: int,
    dump: Path | None,
) -> dict[str, float]:
    """Render, preprocess and classify the chosen test digits in one style; rejects count as errors."""
    tensors, kept, times, rejected = [], [], [], 0
    for index in indices:
        data = render(style, images[index].numpy(), render_seed(seed, style, int(index)))
        start = time.perf_counter()
        try:
            tensors.append(preprocess(data, mean=mean, std=std))
            kept.append(int(index))
        except ImageError:
            rejected += 1
        times.append(time.perf_counter() - start)
    predicted = np.concatenate(
        [predict(model, tensors[i : i + 512]) for i in range(0, len(tensors), 512)] or [predict(model, [])]
    )
    truth = labels[kept].numpy()
    correct = int((predicted == truth).sum())
    row = {
        "n": len(indices),
        "accuracy": correct / len(indices),
        "errors": len(indices) - correct,
        "rejected": rejected,
        "ms": 1000 * float(np.mean(times)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
    }
    if style == "mnist":
        direct = predict(model, [normalize(images[i], mean, std).unsqueeze(0) for i in kept])
        row["agreement"] = float((direct == predicted).mean()) if len(kept) else 0.0
    if dump is not None:
        dump_errors(dump / style, style, images, labels, kept, predicted, seed)
    return row


def dump_errors(
    folder: Path,
    style: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    kept: list[int],
    predicted: np.ndarray,
    seed: int,
) -> None:
    """Write each misread render and the 28×28 the model saw, named by index, truth and prediction."""

    folder.mkdir(parents=True, exist_ok=True)
    for index, guess in zip(kept, predicted, strict=True):
        truth = int(labels[index])
        if guess == truth:
            continue
        data = render(style, images[index].numpy(), render_seed(seed, style, index))
        stem = folder / f"{index:05d}_true{truth}_pred{int(guess)}"
        stem.with_suffix(".bin").write_bytes(data)
        Image.fromarray(to_mnist_pixels(data)).resize((112, 112), Image.Resampling.NEAREST).save(
            stem.with_suffix(".28.png")
        )


def time_photos(count: int, images: torch.Tensor, mean: float, std: float) -> dict[str, float]:
    """Per 1024×768 photo JPEG: median and mean ms to preprocess, the median ms of merely decoding it at full
    size (what a naive pipeline pays before any filtering), and the mean file size in kB."""
    rng = np.random.default_rng(12345)
    files = [render_photo(images[i].numpy(), rng, size=(1024, 768)) for i in range(count)]
    for data in files[:3]:  # warm caches and lazy imports
        preprocess(data, mean=mean, std=std)
    times, decodes = [], []
    for data in files:
        start = time.perf_counter()
        preprocess(data, mean=mean, std=std)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        Image.open(io.BytesIO(data)).convert("L")
        decodes.append(time.perf_counter() - start)
    return {
        "median": 1000 * float(np.median(times)),
        "mean": 1000 * float(np.mean(times)),
        "full_decode": 1000 * float(np.median(decodes)),
        "kilobytes": float(np.mean([len(f) for f in files])) / 1e3,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = Predictor(
        Settings(
            model_path=args.checkpoint,
            device="cpu",
            precision=args.precision,
            max_batch_size=512,
            num_threads=args.threads,
        )
    )
    metadata = model.metadata
    test = load_split(args.data_dir, train=False)
    indices = np.random.default_rng(args.seed).choice(len(test), size=min(args.per_style, len(test)), replace=False)
    print(
        f"checkpoint {args.checkpoint} (MNIST test accuracy {metadata.test_accuracy}), "
        f"served in {model.describe()['precision']} like MNIST_SERVE_PRECISION={args.precision}, "
        f"{len(indices)} test digits per style, seed {args.seed}"
    )
    print(f"{'style':<8} {'n':>5} {'accuracy':>9} {'errors':>6} {'rejected':>8} {'ms/img':>7} {'p95 ms':>7}  notes")
    for style in args.styles:
        row = measure_style(
            style,
            model,
            metadata.mean,
            metadata.std,
            test.images,
            test.labels,
            indices,
            args.seed,
            args.dump_errors,
        )
        note = f"agrees with the raw 28×28 prediction on {row['agreement']:.2%}" if "agreement" in row else ""
        print(
            f"{style:<8} {row['n']:>5} {row['accuracy']:>9.2%} {row['errors']:>6} {row['rejected']:>8} "
            f"{row['ms']:>7.2f} {row['p95_ms']:>7.2f}  {note}",
            flush=True,
        )
    if args.timing:
        timing = time_photos(args.timing, test.images, metadata.mean, metadata.std)
        print(
            f"1024×768 photo JPEG ({timing['kilobytes']:.0f} kB on average), {args.timing} images: "
            f"preprocessing median {timing['median']:.2f} ms, mean {timing['mean']:.2f} ms; "
            f"a full-size decode to grayscale alone takes {timing['full_decode']:.2f} ms"
        )


if __name__ == "__main__":
    main()
