"""Serving req/s and latency: dynamic batching vs MAX_BATCH_SIZE=1 vs a decode-only ceiling, in one run.

    python -m benchmarks.serve_throughput                     # about 2 minutes
    python -m benchmarks.serve_throughput --duration 3 --rounds 5 --concurrency 1 16 64
    python -m benchmarks.serve_throughput --precision bfloat16   # CPUs with AVX512-BF16 or AMX

Each configuration is a real `uvicorn app.main:app` process pinned to core 0 (`taskset -c 0`, one torch
thread, one decode thread); `hey` drives single-image POST /predict load from core 1 (`taskset -c 1`).
All three servers run side by side (idle ones cost nothing) and each load step visits them in interleaved
rounds, so that a shared machine's noise hits every configuration alike; figures are medians over rounds.
Configurations:

- batching: the defaults (MAX_BATCH_SIZE=32, MAX_BATCH_WAIT_MS=20);
- no batching: MNIST_SERVE_MAX_BATCH_SIZE=1, one forward pass per image;
- decode-only: the same app and request path (HTTP, parsing, preprocessing, batcher) with a stub model that
  skips the forward pass (`decode_only_app` below): the ceiling that the model's cost is measured against.

Loads: a 28×28 MNIST test digit as PNG at each concurrency, and a realistic upload (a 1024×768 JPEG photo of
that digit on paper, generated here) at the highest concurrency. The server's mean formed batch size comes
from its own /metrics. Prints a markdown table and the batching / no-batching ratio per load.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from fastapi import FastAPI
from PIL import Image, ImageFilter

from app.config import DEFAULT_MODEL_PATH
from app.main import create_app
from app.testing import StubModel
from mnist_model import ModelMetadata, Net, save_checkpoint

log = logging.getLogger("benchmarks.serve_throughput")
REPO = Path(__file__).resolve().parents[1]
PNG = "28×28 PNG"
PHOTO = "1024×768 JPEG photo"
CONFIGS = {
    "batching": {},
    "no batching": {"MNIST_SERVE_MAX_BATCH_SIZE": "1"},
    "decode-only": {},
}


def decode_only_app() -> FastAPI:
    """The real app with a model that skips the forward pass (`uvicorn --factory` target for the ceiling)."""
    return create_app(model_factory=lambda settings: StubModel())


@dataclass
class Step:
    """One load step's result, from hey's report and the server's /metrics."""

    config: str
    load: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_200: int
    mean_batch: float | None


def mnist_digit() -> np.ndarray:
    """The first MNIST test digit (a 7) as 28×28 uint8, or a drawn stand-in when MNIST is not here."""
    from training.data import DataError, default_data_dir, load_split

    for root in (default_data_dir(), REPO / "data", REPO.parent / "shared/data/mnist"):
        try:
            return load_split(root, train=False, download=False).images[0].numpy()
        except (DataError, RuntimeError, OSError):
            continue
    log.warning("MNIST not found; using a drawn 7")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:9, 7:21] = 255
    for row in range(9, 23):
        digit[row, 20 - (row - 9) // 2 : 23 - (row - 9) // 2] = 255
    return digit


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


def free_port() -> int:
    for port in range(8100, 8200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8100-8199")


class Server:
    """A uvicorn process pinned to one core, started and stopped (by its PID) by this benchmark."""

    def __init__(self, config: str, checkpoint: Path, cpu: str, precision: str) -> None:
        self.port = free_port()
        target = (
            ["benchmarks.serve_throughput:decode_only_app", "--factory"]
            if config == "decode-only"
            else ["app.main:app"]
        )
        env = (
            os.environ
            | CONFIGS[config]
            | {
                "MNIST_SERVE_MODEL_PATH": str(checkpoint),
                "MNIST_SERVE_DEVICE": "cpu",
                "MNIST_SERVE_PRECISION": precision,
                "MNIST_SERVE_NUM_THREADS": "1",
                "MNIST_SERVE_DECODE_THREADS": "1",
                "MNIST_SERVE_LOG_LEVEL": "WARNING",
                "OMP_NUM_THREADS": "1",
            }
        )
        command = [
            "taskset",
            "-c",
            cpu,
            sys.executable,
            "-m",
            "uvicorn",
            *target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(command, cwd=REPO, env=env)
        deadline = time.monotonic() + 90
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {config} server did not become ready")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def batch_totals(self) -> tuple[float, float]:
        """(images, forward passes) so far, from the server's own metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = re.search(r"^mnist_serve_batch_size_sum (\S+)$", text, re.M)
        count = re.search(r"^mnist_serve_batch_size_count (\S+)$", text, re.M)
        return (float(total[1]) if total else 0.0, float(count[1]) if count else 0.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def hey(
    url: str,
    body: Path,
    content_type: str,
    concurrency: int,
    seconds: float,
    cpu: str,
    *,
    path: str = "/predict",
    headers: Sequence[str] = (),
) -> dict[str, float]:
    """Run hey for `seconds` (POST `body` to `path`, with extra `headers` "Name: value") and parse req/s, p50,
    p99 and the count of non-200 answers."""
    command = [
        "taskset",
        "-c",
        cpu,
        "hey",
        "-z",
        f"{seconds}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-T",
        content_type,
        "-D",
        str(body),
        *(option for header in headers for option in ("-H", header)),
        f"{url}{path}",
    ]
    report = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout

    def number(pattern: str, required: bool = True) -> float:
        found = re.search(pattern, report)
        if not found and required:
            raise RuntimeError(f"cannot find {pattern!r} in hey's report:\n{report}")
        return float(found[1]) if found else float("nan")  # hey prints no p99 for fewer than 100 requests

    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", report)}
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": number(r"50% in ([\d.]+) secs") * 1000,
        "p99": number(r"99% in ([\d.]+) secs", required=False) * 1000,
        "non_200": sum(n for code, n in statuses.items() if code != 200) + report.count("Error distribution"),
    }


def warm_up(url: str, body: Path, cpu: str) -> None:
    """One second of load, not reported: first requests pay for lazy imports and allocations."""
    hey(url, body, "image/png", concurrency=16, seconds=1, cpu=cpu)


def run(args: argparse.Namespace) -> list[Step]:
    """Start the three servers, then for each load run `rounds` rounds that visit every server in turn.

    Interleaving rounds (rather than one server after another) spreads the noise of a shared machine over all
    configurations alike; each figure is the median over rounds.
    """
    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    servers: dict[str, Server] = {}
    try:
        checkpoint = args.checkpoint
        if not checkpoint.is_file():
            log.warning("%s is missing; timing an untrained checkpoint (same network, same cost)", checkpoint)
            checkpoint = workdir / "untrained.safetensors"
            save_checkpoint(checkpoint, Net(), ModelMetadata(command="serve_throughput benchmark"))
        digit = mnist_digit()
        loads = {PNG: (workdir / "digit.png", "image/png"), PHOTO: (workdir / "photo.jpg", "image/jpeg")}
        loads[PNG][0].write_bytes(encode(Image.fromarray(digit), "PNG"))
        loads[PHOTO][0].write_bytes(photo_of(digit))
        for config in CONFIGS:
            log.info("starting the %s server", config)
            servers[config] = Server(config, checkpoint, args.server_cpu, args.precision)
            answer = httpx.post(
                f"{servers[config].url}/predict",
                content=loads[PHOTO][0].read_bytes(),
                headers={"Content-Type": "image/jpeg"},
                timeout=30,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"the photo is refused: {answer.status_code} {answer.text}")
            warm_up(servers[config].url, loads[PNG][0], args.client_cpu)
        plan = [(PNG, c) for c in args.concurrency] + [(PHOTO, max(args.concurrency))]
        steps = []
        for load, concurrency in plan:
            rounds: dict[str, list[dict[str, float]]] = {config: [] for config in CONFIGS}
            totals = {config: [0.0, 0.0] for config in CONFIGS}
            for round_index in range(args.rounds):
                order = list(CONFIGS)[round_index % len(CONFIGS) :] + list(CONFIGS)[: round_index % len(CONFIGS)]
                for config in order:
                    server = servers[config]
                    images, passes = server.batch_totals()
                    rounds[config].append(hey(server.url, *loads[load], concurrency, args.duration, args.client_cpu))
                    images_after, passes_after = server.batch_totals()
                    totals[config][0] += images_after - images
                    totals[config][1] += passes_after - passes
            for config in CONFIGS:
                results = rounds[config]
                images, passes = totals[config]
                steps.append(
                    Step(
                        config,
                        load,
                        concurrency,
                        statistics.median(r["rps"] for r in results),
                        statistics.median(r["p50"] for r in results),
                        statistics.median(r["p99"] for r in results),
                        int(sum(r["non_200"] for r in results)),
                        images / passes if passes else None,
                    )
                )
                log.info("%s", steps[-1])
        return steps
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def table(steps: list[Step]) -> str:
    """Markdown: one row per (load, concurrency), columns per configuration, then batching / no-batching."""
    keys = list(dict.fromkeys((step.load, step.concurrency) for step in steps))
    by = {(step.config, step.load, step.concurrency): step for step in steps}
    header = ["load", "c"]
    for config in CONFIGS:
        header += [f"{config} req/s", "p50 ms", "p99 ms"]
    header += ["mean batch", "batching / no batching (req/s)", "non-200"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for load, concurrency in keys:
        row = [load, str(concurrency)]
        for config in CONFIGS:
            step = by[(config, load, concurrency)]
            row += [f"{step.requests_per_s:.0f}", f"{step.p50_ms:.1f}", f"{step.p99_ms:.1f}"]
        batched, single = by[("batching", load, concurrency)], by[("no batching", load, concurrency)]
        mean = f"{batched.mean_batch:.1f}" if batched.mean_batch else "-"
        errors = sum(by[(config, load, concurrency)].non_200 for config in CONFIGS)
        row += [mean, f"{batched.requests_per_s / single.requests_per_s:.2f}×", str(errors)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds per round of a load step (default: 2)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, metavar="N", help="interleaved rounds per load step (default: 3)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 16, 64],
        metavar="C",
        help="concurrent clients per step (default: 1 16 64)",
    )
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
        help="MNIST_SERVE_PRECISION of the servers (default: auto, the service's default)",
    )
    parser.add_argument("--server-cpu", default="0", metavar="CPUS", help="taskset list for uvicorn (default: 0)")
    parser.add_argument("--client-cpu", default="1", metavar="CPUS", help="taskset list for hey (default: 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if shutil.which("hey") is None or shutil.which("taskset") is None:
        parser.error("needs `hey` and `taskset` on PATH (Debian: apt-get install hey util-linux)")
    start = time.monotonic()
    steps = run(args)
    log.info(
        "done in %.0f s on %d CPUs, torch %s",
        time.monotonic() - start,
        os.cpu_count() or 0,
        torch.__version__,
    )
    sys.stdout.write(
        f"uvicorn on CPU {args.server_cpu}, hey on CPU {args.client_cpu}, precision {args.precision}, "
        f"median of {args.rounds} interleaved rounds × {args.duration:g} s per cell\n\n{table(steps)}\n"
    )


if __name__ == "__main__":
    main()
