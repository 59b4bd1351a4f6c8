"""`python -m training.int8`: measure a checkpoint's int8 activation ranges on MNIST training images and record them
in its metadata, so that the service can run its convolutions in int8 on CPUs without native bf16
(`mnist_model.quantized`; MNIST_SERVE_PRECISION=auto or int8).

Why a step of its own: the ranges are a property of the weights (the largest value each convolution's ReLU output
reaches on real digits), so they are measured once where the data is, like the digit gate (`make gate`), and the
serving image needs no dataset. `make train` runs it after training; run it yourself for a checkpoint trained with
`python -m training.run` alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import torch

from mnist_model import load_checkpoint, normalize
from mnist_model.checkpoint import write_metadata
from mnist_model.malloc import keep_freed_memory
from mnist_model.quantized import activation_maxima
from training.data import DataError, default_data_dir, load_split

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.int8",
        description="Record a checkpoint's int8 activation ranges (the largest ReLU output of each convolution over "
        "MNIST training images) in its metadata.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("models/mnist_cnn.safetensors"), help="the checkpoint (rewritten)"
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="folder with MNIST/raw")
    parser.add_argument("--images", type=int, default=60_000, help="MNIST training images measured, from the first")
    parser.add_argument("--output", type=Path, default=None, help="write here instead of over --checkpoint")
    return parser


def record(checkpoint: Path, data_dir: Path, count: int, output: Path) -> dict[str, object]:
    """Measure the ranges of `checkpoint` on its first `count` MNIST training images, write the checkpoint with
    them to `output` (which may be `checkpoint`), and return the record written."""
    keep_freed_memory()  # each chunk's activations reuse the last one's pages (see mnist_model.malloc)
    net, metadata = load_checkpoint(checkpoint, "cpu")
    pixels = load_split(data_dir, train=True).images[:count]
    images = normalize(pixels, metadata.mean, metadata.std).unsqueeze(1)
    with torch.inference_mode():
        ranges = activation_maxima(net.eval(), images)
    entry: dict[str, object] = {
        **dataclasses.asdict(ranges),
        "images": len(images),
        "source": f"MNIST training images 0-{len(images) - 1}",
    }
    if output != checkpoint:
        output.write_bytes(checkpoint.read_bytes())
    write_metadata(output, dataclasses.replace(metadata, int8=entry))
    return entry


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images must be at least 1, got {args.images}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        entry = record(args.checkpoint, args.data_dir, args.images, args.output or args.checkpoint)
    except DataError as exc:
        raise SystemExit(str(exc)) from exc
    log.info("recorded int8 ranges %s in %s", entry, args.output or args.checkpoint)


if __name__ == "__main__":
    main()
