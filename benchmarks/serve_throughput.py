"""Serving req/s and latency against two baselines, in one run: the ratios of issue 9.

    python -m benchmarks.serve_throughput                     # about 4 minutes
    python -m benchmarks.serve_throughput --rounds 5 --duration 3 --concurrency 1 64

Every server is a real `uvicorn` process pinned to one core (`taskset -c 0`; one torch thread, one decode
thread); `hey` drives it from another core (`taskset -c 1`). All servers run side by side (idle ones cost
nothing) and each load step visits them in interleaved rounds, so that a shared machine's noise hits every
configuration alike. Figures are medians over rounds; ratios are taken within each round (the two servers
measured back to back) and reported as the median with the spread (min–max) over rounds. On a machine shared
with other jobs, `--realtime` keeps them from preempting the measured processes (root only).

Servers:
- mnist-serve: `app.main:app` with its defaults (batching; forward passes on the event loop, one torch thread);
- no batching: the same with MNIST_SERVE_MAX_BATCH_SIZE=1;
- bare: `benchmarks/bare_app.py`, FastAPI that only decodes the PNG and answers a constant (the HTTP ceiling);
- naive: `benchmarks/naive_app.py`, FastAPI with the seed `Net` forward pass inline in the route, batch 1;
- no gate: mnist-serve on a copy of the checkpoint without its digit gate (`is_digit` null), for the gate's cost
  (issue 11: at most 5 %), at the highest concurrency and on the batch load; left out for a checkpoint without one.

Loads: a 28×28 MNIST test digit as PNG to POST /predict at each concurrency (all servers); a 1024×768 JPEG photo
of it at the highest concurrency (mnist-serve, no batching); 64 MNIST test digits as base64 PNGs in one JSON
POST /predict/batch (mnist-serve), compared with the model alone: `Predictor.predict` on full batches
(MNIST_SERVE_MAX_BATCH_SIZE) on the same core, measured in every round.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import gzip
import io
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image, ImageFilter

from app.config import DEFAULT_MODEL_PATH, Settings
from app.testing import running_server
from mnist_model import ModelMetadata, Net, save_checkpoint
from mnist_model.checkpoint import read_metadata, write_metadata

log = logging.getLogger("benchmarks.serve_throughput")
REPO = Path(__file__).resolve().parents[1]
SERVE, SINGLE, BARE, NAIVE, NO_GATE = "mnist-serve", "no batching", "bare", "naive", "no gate"
SERVERS = {
    SERVE: ("app.main:app", {}),
    SINGLE: ("app.main:app", {"MNIST_SERVE_MAX_BATCH_SIZE": "1"}),
    BARE: ("benchmarks.bare_app:app", {}),
    NAIVE: ("benchmarks.naive_app:app", {}),
    NO_GATE: ("app.main:app", {}),  # served from the gate-less copy of the checkpoint (`without_gate`)
}
PNG, PHOTO, BATCH = "28×28 PNG", "1024×768 JPEG photo", "64 PNGs per /predict/batch"
BATCH_IMAGES = 64
BATCH_CONCURRENCY = 4
MODEL_ONLY = "model alone"
DEFAULT_BATCH = Settings.model_fields["max_batch_size"].default
"""The servers' MNIST_SERVE_MAX_BATCH_SIZE (its default): the model alone runs full batches of it."""


@dataclass
class Cell:
    """One (load, concurrency, server): hey's report per round, and the server's mean batch size."""

    rounds: list[dict[str, float]] = field(default_factory=list)
    images: float = 0.0
    passes: float = 0.0

    def median(self, key: str) -> float:
        return statistics.median(result[key] for result in self.rounds)


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


def without_gate(checkpoint: Path, workdir: Path) -> Path | None:
    """A copy of `checkpoint` in `workdir` with its digit gate removed (same weights); None when it has none."""
    metadata = read_metadata(checkpoint)
    if not metadata.digit_gate:
        return None
    copy = workdir / "no-gate.safetensors"
    shutil.copyfile(checkpoint, copy)
    write_metadata(copy, dataclasses.replace(metadata, digit_gate={}))
    return copy


def pinned(cpu: str, realtime: bool) -> list[str]:
    """The command prefix that pins to `cpu` (and, with `realtime`, runs under SCHED_FIFO: see --realtime)."""
    return ["taskset", "-c", cpu] + (["chrt", "--fifo", "10"] if realtime else [])


UVICORN_QUIET = ["--no-access-log", "--log-level", "warning"]


def server_env(name: str, checkpoint: Path, precision: str) -> dict[str, str]:
    return SERVERS[name][1] | {
        "MNIST_SERVE_MODEL_PATH": str(checkpoint),
        "MNIST_SERVE_DEVICE": "cpu",
        "MNIST_SERVE_PRECISION": precision,
        "MNIST_SERVE_NUM_THREADS": "1",
        "MNIST_SERVE_DECODE_THREADS": "1",
        "MNIST_SERVE_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }


def batch_totals(url: str) -> tuple[float, float]:
    """(images, forward passes) so far, from a server's own metrics (0, 0 for the baselines)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = [re.search(rf"^mnist_serve_batch_size_{kind} (\S+)$", text, re.M) for kind in ("sum", "count")]
    return tuple(float(match[1]) if match else 0.0 for match in found)  # type: ignore[return-value]


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


def model_only(checkpoint: Path, precision: str, batch: int, seconds: float, prefix: list[str]) -> float:
    """Images/s of `Predictor.predict` alone on full batches of `batch`, in a process pinned like the servers."""
    code = (
        "import sys, time, numpy as np\n"
        "from app.config import Settings\nfrom app.predictor import Predictor\n"
        f"p = Predictor(Settings(model_path={str(checkpoint)!r}, device='cpu', precision={precision!r}, "
        f"num_threads=1, max_batch_size={batch}))\np.warm_up()\n"
        f"pixels = np.random.default_rng(0).integers(0, 256, ({batch}, 28, 28), dtype=np.uint8)\n"
        "for _ in range(20): p.predict(pixels.copy())\n"
        f"n, start = 0, time.perf_counter()\nwhile time.perf_counter() - start < {seconds}:\n"
        "    p.predict(pixels.copy()); n += 1\n"
        f"print(n * {batch} / (time.perf_counter() - start))\n"
    )
    command = [*prefix, sys.executable, "-c", code]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return float(subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout)


def run(args: argparse.Namespace, workdir: Path) -> dict[tuple[str, int, str], Cell]:
    """Start the servers, then for each load step run `rounds` rounds that visit every server in turn."""
    checkpoint = args.checkpoint
    if not checkpoint.is_file():
        log.warning("%s is missing; timing an untrained checkpoint (same network, same cost)", checkpoint)
        checkpoint = workdir / "untrained.safetensors"
        save_checkpoint(checkpoint, Net(), ModelMetadata(command="serve_throughput benchmark"))
    digits = mnist_test_digits(200)
    bodies = {
        PNG: (workdir / "digit.png", "image/png", "/predict"),
        PHOTO: (workdir / "photo.jpg", "image/jpeg", "/predict"),
        BATCH: (workdir / "batch.json", "application/json", "/predict/batch"),
    }
    bodies[PNG][0].write_bytes(encode(Image.fromarray(digits[0]), "PNG"))
    bodies[PHOTO][0].write_bytes(photo_of(digits[0]))
    bodies[BATCH][0].write_bytes(batch_body(digits))
    ungated = without_gate(checkpoint, workdir)
    servers = [name for name in SERVERS if name != NO_GATE or ungated is not None]
    gate = [NO_GATE] if ungated is not None else []
    high = max(args.concurrency)
    plan = [(PNG, c, [name for name in servers if name != NO_GATE or c == high]) for c in args.concurrency]
    plan += [(PHOTO, high, [SERVE, SINGLE]), (BATCH, BATCH_CONCURRENCY, [SERVE, *gate, MODEL_ONLY])]
    cells: dict[tuple[str, int, str], Cell] = {}
    server, client = pinned(args.server_cpu, args.realtime), pinned(args.client_cpu, args.realtime)
    with contextlib.ExitStack() as stack:
        urls = {}
        for name in servers:
            log.info("starting %s", name)
            env = server_env(name, ungated if name == NO_GATE and ungated else checkpoint, args.precision)
            target = SERVERS[name][0]
            started = running_server(target, env=env, server_args=UVICORN_QUIET, command_prefix=server, cwd=REPO)
            urls[name] = stack.enter_context(started).url
            hey(f"{urls[name]}/predict", bodies[PNG][0], "image/png", 16, 1, client)  # warm-up
        for load, concurrency, names in plan:
            body, content_type, path = bodies[load]
            for round_index in range(args.rounds):
                for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                    cell = cells.setdefault((load, concurrency, name), Cell())
                    if name == MODEL_ONLY:
                        images_per_s = model_only(checkpoint, args.precision, DEFAULT_BATCH, args.duration, server)
                        cell.rounds.append({"rps": images_per_s / BATCH_IMAGES, "p50": 0.0, "p99": 0.0, "non_200": 0})
                        continue
                    before = batch_totals(urls[name])
                    url = f"{urls[name]}{path}"
                    cell.rounds.append(hey(url, body, content_type, concurrency, args.duration, client))
                    after = batch_totals(urls[name])
                    cell.images += after[0] - before[0]
                    cell.passes += after[1] - before[1]
                rates = ", ".join(
                    f"{name} {cells[(load, concurrency, name)].rounds[-1]['rps']:.0f}/s" for name in names
                )
                log.info("%s c=%d round %d: %s", load, concurrency, round_index + 1, rates)
    return cells


def ratio(
    cells: dict[tuple[str, int, str], Cell],
    load: str,
    concurrency: int,
    numerator: str,
    denominator: str,
    key: str = "rps",
) -> str:
    """Median and spread over rounds of the per-round ratio numerator ÷ denominator."""
    top, bottom = cells[(load, concurrency, numerator)].rounds, cells[(load, concurrency, denominator)].rounds
    ratios = [a[key] / b[key] for a, b in zip(top, bottom, strict=True) if b[key] > 0 and a[key] >= 0]  # not NaN
    if not ratios:
        return "n/a (nothing answered in time)"
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def report(cells: dict[tuple[str, int, str], Cell], args: argparse.Namespace) -> str:
    lines = [
        "| load | c | server | req/s | p50 ms | p99 ms | mean batch | non-200 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (load, concurrency, name), cell in cells.items():
        if name == MODEL_ONLY:
            rate = f"{cell.median('rps'):.0f} ({cell.median('rps') * BATCH_IMAGES:.0f} images/s)"
            lines.append(f"| {load} | – | {name} (batches of {DEFAULT_BATCH}) | {rate} | | | {DEFAULT_BATCH} | |")
            continue
        mean_batch = f"{cell.images / cell.passes:.1f}" if cell.passes else "–"
        rate = f"{cell.median('rps'):.0f}"
        if load == BATCH:
            rate += f" ({cell.median('rps') * BATCH_IMAGES:.0f} images/s)"
        errors = int(sum(result["non_200"] for result in cell.rounds))
        lines.append(
            f"| {load} | {concurrency} | {name} | {rate} | {cell.median('p50'):.1f} | {cell.median('p99'):.1f} "
            f"| {mean_batch} | {errors} |"
        )
    high, low = max(args.concurrency), min(args.concurrency)
    naive_p50 = cells[(PNG, low, NAIVE)].median("p50")
    lines += [
        "",
        f"Ratios, per round, median (min–max) of {args.rounds} rounds:",
        f"- c={high} req/s, mnist-serve ÷ bare: {ratio(cells, PNG, high, SERVE, BARE)} (target ≥ 0.60)",
        f"- c={low} req/s, mnist-serve ÷ naive: {ratio(cells, PNG, low, SERVE, NAIVE)} (target ≥ 1.0); "
        f"p50 {cells[(PNG, low, SERVE)].median('p50'):.2f} ms vs {naive_p50:.2f} ms (target: no higher)",
        f"- /predict/batch images/s ÷ model alone: {ratio(cells, BATCH, BATCH_CONCURRENCY, SERVE, MODEL_ONLY)} "
        "(target ≥ 0.80)",
    ]
    if (BATCH, BATCH_CONCURRENCY, NO_GATE) in cells:
        lines += [
            f"- c={high} req/s, mnist-serve ÷ no gate: {ratio(cells, PNG, high, SERVE, NO_GATE)} (issue 11: ≥ 0.95)",
            f"- /predict/batch images/s, mnist-serve ÷ no gate: "
            f"{ratio(cells, BATCH, BATCH_CONCURRENCY, SERVE, NO_GATE)} (issue 11: ≥ 0.95)",
        ]
    for concurrency in args.concurrency:
        lines.append(
            f"- c={concurrency} req/s, batching ÷ no batching: {ratio(cells, PNG, concurrency, SERVE, SINGLE)}"
        )
    return "\n".join(lines)


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
        choices=["auto", "float32", "bfloat16"],
        help=f"MNIST_SERVE_PRECISION {precision_help}",
    )
    parser.add_argument("--server-cpu", default="0", metavar="CPUS", help="taskset list for the servers (default: 0)")
    parser.add_argument("--client-cpu", default="1", metavar="CPUS", help="taskset list for hey (default: 1)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=2.0, metavar="S", help="seconds per cell and round (default: 2)"
    )
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaved rounds per load (default: 3)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 16, 64],
        metavar="C",
        help="concurrent clients for the PNG load (default: 1 16 64); the photo load uses the highest",
    )
    add_server_flags(parser, "of mnist-serve and the model-alone figure (default: auto); naive is float32")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run servers, hey and the model-alone figure under SCHED_FIFO (chrt; root): on a machine shared with "
        "other jobs they are then not preempted by them (others keep the kernel's 5%% real-time reserve)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if any(shutil.which(tool) is None for tool in ("hey", "taskset", "chrt")):
        parser.error("needs `hey`, `taskset` and `chrt` on PATH (Debian: apt-get install hey util-linux)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as workdir:
        cells = run(args, Path(workdir))
    log.info("done in %.0f s on %d CPUs, torch %s", time.monotonic() - start, os.cpu_count() or 0, torch.__version__)
    sys.stdout.write(
        f"servers on CPU {args.server_cpu}, hey on CPU {args.client_cpu}, precision {args.precision}"
        f"{', SCHED_FIFO' if args.realtime else ''}, "
        f"median of {args.rounds} interleaved rounds × {args.duration:g} s per cell\n\n{report(cells, args)}\n"
    )


if __name__ == "__main__":
    main()
