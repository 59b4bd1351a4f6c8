"""`make serve`'s server: gunicorn sizes workers and threads from the CPUs available, forks after one import."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app import cpus
from app.testing import running_server
from tests.helpers import REPO, digit_png


def load_conf(monkeypatch, cpu_count: int, **env: str):
    names = ("WEB_CONCURRENCY", "MNIST_SERVE_NUM_THREADS", "MNIST_SERVE_DECODE_THREADS", "HOST", "PORT")
    for name in (*names, "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"):
        monkeypatch.setenv(name, "")  # recorded, so that what the module sets is undone after the test
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cpus, "available_cpus", lambda *args: cpu_count)
    sys.modules.pop("app.gunicorn_conf", None)
    return importlib.import_module("app.gunicorn_conf")


@pytest.mark.parametrize(
    ("cpu_count", "env", "workers", "threads"),
    [(2, {}, 2, "1"), (16, {}, 16, "1"), (16, {"WEB_CONCURRENCY": "4"}, 4, "4"), (3, {"WEB_CONCURRENCY": "2"}, 2, "1")],
)
def test_one_worker_per_cpu_and_the_cpus_shared_out(monkeypatch, cpu_count, env, workers, threads):
    conf = load_conf(monkeypatch, cpu_count, **env)
    assert conf.workers == workers
    assert os.environ["MNIST_SERVE_NUM_THREADS"] == threads == os.environ["MNIST_SERVE_DECODE_THREADS"]
    assert conf.preload_app and conf.worker_class == "uvicorn_worker.UvicornWorker"


def test_explicit_thread_counts_and_address_win(monkeypatch):
    conf = load_conf(monkeypatch, 8, MNIST_SERVE_NUM_THREADS="3", UVICORN_HOST="127.0.0.1", UVICORN_PORT="9000")
    assert os.environ["MNIST_SERVE_NUM_THREADS"] == "3"
    assert conf.bind == ["127.0.0.1:9000"]


def test_the_drain_is_the_one_the_manifests_set_for_uvicorn(monkeypatch):
    assert load_conf(monkeypatch, 2).graceful_timeout == 10
    assert load_conf(monkeypatch, 2, UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN="15").graceful_timeout == 15


@pytest.mark.slow
def test_gunicorn_serves_with_forked_workers_that_load_the_model_after_the_fork(untrained_checkpoint: Path):
    settings = {"model_path": str(untrained_checkpoint), "device": "cpu"}
    with running_server(server="gunicorn", env={"WEB_CONCURRENCY": "2"}, settings=settings, cwd=REPO) as server:
        url, master = server.url, server.process
        answers = [
            httpx.post(f"{url}/predict", content=digit_png(), headers={"Content-Type": "image/png"}, timeout=30)
            for _ in range(8)
        ]
        assert all(answer.status_code == 200 for answer in answers)
        runtime = httpx.get(f"{url}/model").json()["runtime"]
        workers = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    assert len(workers) == 2
    assert runtime["num_threads"] == max(1, cpus.available_cpus() // 2)


@pytest.mark.parametrize(("port", "imported"), [("8081", True), ("0", False), ("not-a-port", False)])
def test_the_master_imports_grpc_before_forking_only_when_it_is_served(port, imported):
    """With gRPC on, its modules are imported once in the master, so the workers share them; off, or with a bad
    setting (left for the workers' start-up to report), nothing is. A fresh interpreter: a clean sys.modules."""
    probe = (
        "import sys, app.gunicorn_conf as conf; conf.when_ready(None); "
        "print('grpc' in sys.modules, 'app.oip.grpc_server' in sys.modules)"
    )
    environment = {**os.environ, "MNIST_SERVE_GRPC_PORT": port}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(imported), str(imported)]
