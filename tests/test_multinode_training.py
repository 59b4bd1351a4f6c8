"""Training across machines: two torchrun launchers act as two nodes on loopback (c10d rendezvous, gloo).

Each "node" has an output folder of its own, as separate machines would: the ranks must train on disjoint shards
that together cover the data, and exactly one checkpoint must be written, on whichever node holds rank 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.testing import free_port
from mnist_model import load_checkpoint
from tests.helpers import REPO, RUN_OUTPUTS

pytestmark = pytest.mark.slow

SAMPLES = 512
LAUNCH_TIMEOUT_S = 420  # generous: both nodes share a small, possibly busy machine


def launcher(node_rank: int, port: int, data: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        f"--node_rank={node_rank}",  # as on real machines; c10d then assigns the ranks itself
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        "--rdzv_id=two-node-test",
        # Node 0 hosts the rendezvous store (no guessing from host names); both give up after 5 minutes.
        f"--rdzv_conf=is_host={int(node_rank == 0)},join_timeout=300,read_timeout=300",
        "--local_addr=127.0.0.1",
        "--max_restarts=0",
        "-m",
        "training.run",
        "--data-dir",
        str(data),
        "--output",
        str(output),
        "--epochs",
        "1",
        "--max-train-samples",
        str(SAMPLES),
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--no-progress",
    ]


def run_two_nodes(mnist_root: Path, outputs: list[Path], logs: list[Path]) -> list[int]:
    """Start both launchers, wait for both; on a timeout kill both process groups (launcher and its worker)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo"}
    port = free_port()
    processes = []
    try:
        for node_rank, (output, log) in enumerate(zip(outputs, logs, strict=True)):
            with log.open("w") as sink:
                command = launcher(node_rank, port, mnist_root, output)
                processes.append(
                    subprocess.Popen(
                        command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        return [process.wait(timeout=LAUNCH_TIMEOUT_S) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_two_nodes_train_disjoint_shards_and_write_one_checkpoint(mnist_root, tmp_path):
    outputs = [tmp_path / f"node{rank}" / "m.safetensors" for rank in (0, 1)]
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    codes = run_two_nodes(mnist_root, outputs, logs)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n\n".join(f"node {rank}:\n{text[-3000:]}" for rank, text in enumerate(texts))

    written = [output for output in outputs if output.parent.exists() and any(output.parent.iterdir())]
    assert len(written) == 1, f"files on {len(written)} nodes; only rank 0 may write"
    (output,) = written
    assert {path.name for path in output.parent.iterdir()} == RUN_OUTPUTS  # no temporary or duplicate files

    (epoch,) = json.loads((output.parent / "m.history.json").read_text())
    assert epoch["world_size"] == 2
    assert epoch["samples_per_rank"] == SAMPLES // 2
    assert epoch["distinct_samples"] == SAMPLES  # the two shards do not overlap and cover the data
    assert sum(text.count("epoch 1/1  train loss") for text in texts) == 1  # only rank 0 logs

    model, metadata = load_checkpoint(output)
    assert metadata.command.startswith("torchrun --nnodes=2 --nproc_per_node=1 -m training.run")
    assert metadata.hyperparameters["world_size"] == 2 and metadata.hyperparameters["train_samples"] == SAMPLES
    assert metadata.epochs == 1
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # the checkpoint loads into a working model
