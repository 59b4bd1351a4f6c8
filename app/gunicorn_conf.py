"""Gunicorn settings for `make serve` and the container: one worker process per usable CPU, each cheap.

    gunicorn -c python:app.gunicorn_conf app.main:app

Why gunicorn in front of uvicorn: a request's Python work (HTTP, parsing, decoding, JSON) holds the GIL, so
more cores need more processes. `uvicorn --workers N` starts each worker from scratch (spawn): every one imports
torch again, ~445 MiB of proportional set size (PSS) each. Here the master imports the app (torch, numpy, PIL,
FastAPI) once (`preload_app`) and forks the workers, which share those pages copy-on-write; each worker loads
the model and starts its threads in its own lifespan, after the fork (nothing before the fork starts an OpenMP
pool or touches CUDA). `gc.freeze()` keeps the workers' garbage collector off the shared pages.

Environment (all optional):
- WEB_CONCURRENCY: worker processes (default: the CPUs available, cgroup quota and affinity respected,
  see `app.cpus`). On a GPU each worker holds its own CUDA context: 1–2 workers are usually enough there.
- MNIST_SERVE_NUM_THREADS / MNIST_SERVE_DECODE_THREADS: per worker; default CPUs ÷ workers (at least 1), so
  the workers together use each CPU once. With one torch thread a worker runs its forward passes on its event
  loop (MNIST_SERVE_FORWARD_ON=auto).
- HOST / PORT (or the image's UVICORN_HOST / UVICORN_PORT): where to listen (default 0.0.0.0:8000).
- UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN: seconds a stopping worker may take to finish its requests in flight (default
  10), the drain the Kubernetes manifests size their grace period by; the same variable `uvicorn` itself reads.
- MNIST_SERVE_LOG_FORMAT=json: gunicorn's and uvicorn's lines as JSON too, as the app's (`JsonLinesLogger`).
- GUNICORN_CMD_ARGS: any other gunicorn flag, e.g. "--access-logfile -".
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING

from gunicorn.glogging import Logger

from app.cpus import available_cpus
from app.logs import LogFormat, formatter

if TYPE_CHECKING:
    from app.config import Settings

_cpus = available_cpus()
_host = os.environ.get("HOST") or os.environ.get("UVICORN_HOST") or "0.0.0.0"
_port = os.environ.get("PORT") or os.environ.get("UVICORN_PORT") or "8000"

bind = [f"{_host}:{_port}"]
workers = int(os.environ.get("WEB_CONCURRENCY") or _cpus)
worker_class = "uvicorn_worker.UvicornWorker"
preload_app = True
# Finish in-flight requests on SIGTERM, then the master kills the worker (docker compose waits 15 s, the pods 30 s).
graceful_timeout = int(os.environ.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN") or 10)
timeout = 60  # a worker silent this long is restarted (the forward pass of a batch takes milliseconds)
keepalive = 5
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat files: memory, not a slow disk


def _settings() -> Settings | None:
    """The MNIST_SERVE_* settings the workers will read; None where they are invalid, which the workers' start-up
    reports, naming the variable."""
    from app.config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError:
        return None


def _log_format() -> LogFormat:
    """MNIST_SERVE_LOG_FORMAT, for gunicorn's own lines and uvicorn's (text where the settings are invalid)."""
    settings = _settings()
    return "text" if settings is None else settings.log_format


class JsonLinesLogger(Logger):
    """gunicorn's logger with its lines as JSON (app.logs): its error log, its access log where one is asked for
    (`--access-logfile -`), and so uvicorn's, which a worker writes through the same handlers."""

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter("json"))


if _log_format() == "json":
    logger_class = JsonLinesLogger

_per_worker = str(max(1, _cpus // workers))
os.environ.setdefault("MNIST_SERVE_NUM_THREADS", _per_worker)
os.environ.setdefault("MNIST_SERVE_DECODE_THREADS", _per_worker)


def when_ready(server: object) -> None:
    """After the preload, before the first fork: import gRPC's modules if it will be served, then move every
    object so far out of the collector's reach, so that a worker's garbage collection does not write to (and so
    copy) the pages it shares with the master, nor stall for a full scan of them (see app.main)."""
    _import_grpc()
    gc.collect()
    gc.freeze()


def _import_grpc() -> None:
    """Import the gRPC server's modules (grpcio, protobuf, the messages) in the master when MNIST_SERVE_GRPC_PORT
    is set, so the workers share them: ~10 MiB less private memory per worker (`benchmarks.serve_workers`).

    Safe before a fork: importing creates no gRPC object and starts no thread; each worker starts its own server
    after the fork (app.main). A bad setting is left for the workers' start-up to report, naming the variable.
    """
    settings = _settings()
    if settings is not None and settings.grpc_port != 0:
        import app.oip.grpc_server  # noqa: F401 - imported for its side effect: the modules in memory
