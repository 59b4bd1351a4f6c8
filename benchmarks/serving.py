"""What the serving benchmarks share: the request bodies (MNIST test digits as PNG, a photo of one, a JSON batch),
`hey` pinned to a core, and the server flags.

`serve_throughput`, `oip_throughput` and `serve_workers` drive real server processes with `hey`
(`apt-get install hey`); this module holds only what they have in common.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from app.config import CPU_PRECISIONS, DEFAULT_MODEL_PATH

log = logging.getLogger("benchmarks.serving")
REPO = Path(__file__).resolve().parents[1]
BATCH_IMAGES = 64
"""Images per /predict/batch request in the batch loads."""


def mnist_test_digits(count: int) -> np.ndarray:
    """The first MNIST test digits (uint8 N×28×28) from the raw .gz file, or drawn 7s when MNIST is not here."""
    roots: list[str | Path | None] = [os.environ.get("MNIST_RAW_DIR"), os.environ.get("MNIST_DATA_DIR"), REPO / "data"]
    roots += [REPO.parent / "shared/data/mnist", REPO.parents[1] / "shared/data/mnist"]  # beside a clone, a worktree
    for root in [Path(root) for root in roots if root]:
        for folder in (root, root / "MNIST/raw"):
            path = folder / "t10k-images-idx3-ubyte.gz"
            if path.is_file():  # IDX: 16-byte header, then the pixels row by row
                return np.frombuffer(gzip.open(path).read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    log.warning("MNIST not found (set MNIST_RAW_DIR); using drawn 7s")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:9, 7:21] = 255
    for row in range(9, 23):
        digit[row, 20 - (row - 9) // 2 : 23 - (row - 9) // 2] = 255
    return np.stack([digit] * count)


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def photo_of(digit: np.ndarray, seed: int = 0) -> bytes:
    """A 1024×768 JPEG of `digit` written in dark ink on slightly tinted, unevenly lit, grainy paper."""
    rng = np.random.default_rng(seed)
    ink = Image.fromarray(digit).resize((360, 360), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    strength = np.zeros((768, 1024), np.float32)
    strength[200:560, 330:690] = np.asarray(ink, np.float32) / 255.0
    x = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    y = np.linspace(0.0, 1.0, 768, dtype=np.float32)[:, None]
    light = 0.78 + 0.18 * x - 0.10 * y  # brighter on the right, darker towards the bottom
    paper = np.stack([light * 236, light * 230, light * 214], axis=-1) + rng.normal(0, 4, (768, 1024, 3))
    pen = np.array([38, 40, 70], np.float32)  # blue-black ballpoint
    pixels = paper * (1 - strength[..., None]) + pen * strength[..., None]
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=85)


def batch_body(digits: np.ndarray) -> bytes:
    """JSON for /predict/batch: the first BATCH_IMAGES digits that preprocessing passes through unchanged
    (98.9 % of MNIST is in MNIST format already; the rest run the photo pipeline, milliseconds each)."""
    from app.preprocess import to_mnist_pixels

    pngs = [encode(Image.fromarray(digit), "PNG") for digit in digits]
    kept = [png for png, digit in zip(pngs, digits, strict=True) if np.array_equal(to_mnist_pixels(png), digit)]
    return json.dumps({"images": [base64.b64encode(png).decode() for png in kept[:BATCH_IMAGES]]}).encode()


def pinned(cpu: str, realtime: bool) -> list[str]:
    """The command prefix that pins to `cpu` (and, with `realtime`, runs under SCHED_FIFO: see --realtime)."""
    return ["taskset", "-c", cpu] + (["chrt", "--fifo", "10"] if realtime else [])


UVICORN_QUIET = ["--no-access-log", "--log-level", "warning"]


def hey(
    url: str,
    body: Path,
    content_type: str,
    concurrency: int,
    seconds: float,
    prefix: Sequence[str],
    *,
    headers: Sequence[str] = (),
) -> dict[str, float]:
    """Run hey (after `prefix`, e.g. `pinned(...)`) for `seconds`, POSTing `body` to `url` with extra `headers`
    ("Name: value"), and parse req/s, p50, p99 and the count of non-200 answers."""
    command = [*prefix, "hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST"]
    command += ["-T", content_type, "-D", str(body), *(option for header in headers for option in ("-H", header)), url]
    report = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, report)
        # NaN: nothing answered within the time (or, for p99, fewer than 100 answers: hey prints none)
        return float(found[1]) if found else float("nan")

    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", report)}
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": number(r"50% in ([\d.]+) secs") * 1000,
        "p99": number(r"99% in ([\d.]+) secs") * 1000,
        "non_200": sum(n for code, n in statuses.items() if code != 200) + report.count("Error distribution"),
    }


def add_server_flags(parser: argparse.ArgumentParser, precision_help: str) -> None:
    """--checkpoint, --precision, --server-cpu and --client-cpu: what every serving benchmark here takes."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        metavar="PATH",
        help=f"checkpoint to serve (default: {DEFAULT_MODEL_PATH.relative_to(REPO)}, or an untrained one when missing)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=CPU_PRECISIONS,
        help=f"MNIST_SERVE_PRECISION {precision_help}",
    )
    parser.add_argument("--server-cpu", default="0", metavar="CPUS", help="taskset list for the servers (default: 0)")
    parser.add_argument(
        "--client-cpu", default="1", metavar="CPUS", help="taskset list for the load generator (default: 1)"
    )
