"""What a worker process costs and what it brings: memory (PSS) per worker and req/s, by worker count.

    python -m benchmarks.serve_workers                       # PSS for 1, 2, 4 workers; req/s, 1 vs one per CPU
    python -m benchmarks.serve_workers --workers 1 2 --rounds 5 --realtime

Each configuration is `make serve`'s server (gunicorn -c python:app.gunicorn_conf app.main:app) with
WEB_CONCURRENCY workers on all CPUs, gRPC on as there (--no-grpc: HTTP only, the app's default elsewhere).
Memory: after warm-up and a few thousand requests (single images and batches), the proportional set size (PSS,
/proc/PID/smaps_rollup: shared pages divided among the processes sharing them) of the master and of each
worker, and each worker's private (unshared) memory. The cost of one more worker is the growth of the total from
the smallest to the largest count, per worker added; the projection for more CPUs extrapolates it (printed as
such), unless --workers ran that many: 16 workers here each get one torch thread, as on a 16-CPU host by
default, so `--workers 1 2 16` measures the 16-CPU default's memory.
Throughput: `hey -c 64` with a 28×28 PNG against the two worker counts of --compare in interleaved rounds (hey
shares the machine's CPUs with the workers).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from app.cpus import available_cpus
from app.testing import free_port, running_server
from benchmarks.serving import REPO, batch_body, encode, mnist_test_digits

log = logging.getLogger("benchmarks.serve_workers")


def memory_mib(pid: int, fields: tuple[str, ...] = ("Pss:",)) -> float:
    """The sum of `fields` in /proc/PID/smaps_rollup, in MiB."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return sum(int(line.split()[1]) for line in lines if line.startswith(fields)) / 1024


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def hey(url: str, body: Path, content_type: str, concurrency: int, seconds: float, realtime: bool) -> str:
    command = (["chrt", "--fifo", "10"] if realtime else []) + ["hey", "-z", f"{seconds}s", "-c", str(concurrency)]
    command += ["-m", "POST", "-T", content_type, "-D", str(body), url]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout


def start(
    stack: contextlib.ExitStack, workers: int, realtime: bool, grpc: bool = True
) -> tuple[str, subprocess.Popen[bytes]]:
    """`make serve`'s gunicorn with `workers` workers (gRPC on a free port unless not `grpc`); URL, master process."""
    env = {"WEB_CONCURRENCY": str(workers), "MNIST_SERVE_LOG_LEVEL": "WARNING"}
    if grpc:
        env["MNIST_SERVE_GRPC_PORT"] = str(free_port())
    prefix = ["chrt", "--fifo", "10"] if realtime else []
    server = stack.enter_context(running_server(server="gunicorn", env=env, command_prefix=prefix, cwd=REPO))
    return server.url, server.process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], metavar="N", help="(default: 1 2 4)")
    parser.add_argument(
        "--compare",
        type=int,
        nargs=2,
        default=[1, available_cpus()],
        metavar=("A", "B"),
        help="worker counts whose req/s are compared (default: 1 and the CPUs available, the default count)",
    )
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="req/s rounds (default: 3)")
    parser.add_argument("--duration", type=float, default=3.0, metavar="S", help="seconds per round (default: 3)")
    parser.add_argument("--project", type=int, default=16, metavar="CPUS", help="CPUs to extrapolate to (default: 16)")
    parser.add_argument(
        "--realtime", action="store_true", help="servers and hey under SCHED_FIFO (see serve_throughput)"
    )
    parser.add_argument(
        "--no-grpc", dest="grpc", action="store_false", help="serve HTTP only (default: gRPC on, as `make serve`)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if shutil.which("hey") is None:
        parser.error("needs `hey` on PATH (Debian: apt-get install hey)")
    counts = sorted(set(args.workers))
    with tempfile.TemporaryDirectory(prefix="serve-workers-") as folder:
        digits = mnist_test_digits(200)
        png, batch = Path(folder) / "digit.png", Path(folder) / "batch.json"
        png.write_bytes(encode(Image.fromarray(digits[0]), "PNG"))
        batch.write_bytes(batch_body(digits))
        memory: dict[int, tuple[float, list[float], list[float]]] = {}
        for workers in counts:
            with contextlib.ExitStack() as stack:
                url, master_process = start(stack, workers, realtime=False, grpc=args.grpc)
                time.sleep(2)  # every worker has warmed up
                hey(f"{url}/predict", png, "image/png", 16, 3, realtime=False)
                hey(f"{url}/predict/batch", batch, "application/json", 4, 2, realtime=False)
                pids = children(master_process.pid)
                memory[workers] = (
                    memory_mib(master_process.pid),
                    [memory_mib(pid) for pid in pids],
                    [memory_mib(pid, ("Private_Clean:", "Private_Dirty:")) for pid in pids],
                )
            log.info("%d workers: %s", workers, memory[workers])
        rates: dict[int, list[float]] = {args.compare[0]: [], args.compare[1]: []}
        with contextlib.ExitStack() as stack:
            urls = {workers: start(stack, workers, args.realtime, args.grpc)[0] for workers in rates}
            for url in urls.values():
                hey(f"{url}/predict", png, "image/png", 64, 1, args.realtime)  # warm-up
            for index in range(args.rounds):
                for workers in list(rates)[index % 2 :] + list(rates)[: index % 2]:
                    report = hey(f"{urls[workers]}/predict", png, "image/png", 64, args.duration, args.realtime)
                    found = re.search(r"Requests/sec:\s+([\d.]+)", report)
                    rates[workers].append(float(found[1]) if found else 0.0)
    lines = ["| workers | master PSS | PSS per worker | private per worker | total PSS |", "|---:|---:|---:|---:|---:|"]
    totals: dict[int, float] = {}
    for workers, (master, pss, private) in memory.items():
        totals[workers] = master + sum(pss)
        lines.append(
            f"| {workers} | {master:.0f} MiB | {min(pss):.0f}–{max(pss):.0f} MiB | "
            f"{min(private):.0f}–{max(private):.0f} MiB | {totals[workers]:.0f} MiB |"
        )
    low, high = counts[0], counts[-1]
    per_worker = (totals[high] - totals[low]) / (high - low) if high > low else float("nan")
    projected = totals[low] + (args.project - low) * per_worker
    first, second = args.compare
    ratios = [b / a for a, b in zip(rates[first], rates[second], strict=True) if a]
    sys.stdout.write(
        f"{available_cpus()} CPUs available; memory after warm-up and load\n\n" + "\n".join(lines) + "\n\n"
        f"Each worker beyond the first: {per_worker:.0f} MiB PSS (total growth from {low} to {high} workers).\n"
        f"{projection(args.project, totals, projected)}\n"
        f"req/s at c=64, {first} worker(s): {statistics.median(rates[first]):.0f}, {second} workers: "
        f"{statistics.median(rates[second]):.0f}; ratio per round median {statistics.median(ratios):.2f}× "
        f"({min(ratios):.2f}–{max(ratios):.2f}) over {args.rounds} rounds\n"
    )


def projection(workers: int, totals: dict[int, float], projected: float) -> str:
    """The line on `workers` workers: the measured total when that count was run (--workers 1 2 16 measures what a
    16-CPU host starts by default: one single-threaded worker per CPU), else the extrapolation, marked as such."""
    if workers in totals:
        return f"Measured: {workers} workers take {totals[workers]:.0f} MiB total PSS."
    return f"Extrapolated, not measured: {workers} workers ≈ {projected:.0f} MiB total PSS."


if __name__ == "__main__":
    main()
