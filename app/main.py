"""The HTTP service. Run it with:

    uvicorn app.main:app --host 0.0.0.0 --port 8000              # one process (development)
    gunicorn -c python:app.gunicorn_conf app.main:app           # one worker per CPU (`make serve`, the image)

Settings come from `MNIST_SERVE_*` variables (see `app.config`), read at start-up, not at import: importing
this module never fails. A bad setting or checkpoint stops start-up with a message saying what to fix.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from app import NAME, __version__
from app.config import Settings, SettingsError, load_settings
from app.cors import CrossOrigin
from app.direct_routes import ServingApp
from app.errors import install_error_handlers
from app.limits import BodySizeLimit
from app.logs import configure_logging
from app.metrics import Metrics, MetricsMiddleware
from app.predictor import Predictor
from app.routes import health, metrics, model, oip, page, predict
from app.service import ModelFactory, Service
from mnist_model import CheckpointError

if TYPE_CHECKING:
    from app.oip.grpc_server import GrpcServer

log = logging.getLogger("app")
GRPC_GRACE_S = 5.0
"""How long gRPC calls in flight may take to finish when the server stops (HTTP's is gunicorn's graceful_timeout)."""


def create_app(settings: Settings | None = None, *, model_factory: ModelFactory = Predictor) -> FastAPI:
    """Build an app; `settings=None` reads the environment at start-up. Tests pass own settings and models."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            resolved = settings or load_settings()
            configure_logging(resolved.log_level, resolved.log_format)
            log.info("settings: %s", json.dumps(resolved.model_dump(mode="json")))
            app.state.settings = resolved
            app.state.service = Service.start(resolved, model_factory, app.state.metrics)
            grpc_server = _start_grpc(app.state.service, resolved, app.state.metrics)
            _freeze_startup_objects()
        except (SettingsError, CheckpointError, RuntimeError) as exc:
            log.error("cannot start: %s", exc)
            if app.state.service is not None:
                app.state.service.stop()
            raise
        model = app.state.service.model
        runtime = model.describe()
        log.info(
            "serving %s version %s on %s in %s",
            model.name,
            model.version,
            runtime.get("device"),
            runtime.get("precision"),
        )
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(GRPC_GRACE_S)
            service, app.state.service = app.state.service, None
            service.stop()

    app = ServingApp(
        title=NAME,
        summary="Handwritten digit classification, batched across concurrent requests.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    app.state.settings = settings
    app.state.service = None
    app.add_middleware(BodySizeLimit, limit=lambda: app.state.settings and app.state.settings.max_body_bytes)
    # outside the cap, so that a page on another origin can read a 413's message too
    app.add_middleware(CrossOrigin, origins=lambda: app.state.settings and app.state.settings.cors_origins)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: it also sees 413s and 500s
    install_error_handlers(app)
    for router in (predict.router, health.router, model.router, metrics.router, oip.router, page.router):
        app.include_router(router)
    return app


def _start_grpc(service: Service, settings: Settings, metrics: Metrics) -> GrpcServer | None:
    """The Open Inference Protocol over gRPC on MNIST_SERVE_GRPC_PORT, beside HTTP; None when the port is 0.

    Imported here, not at the top: gRPC is loaded only where it is served, and only after a gunicorn fork.
    """
    if settings.grpc_port == 0:
        return None
    from app.oip.grpc_server import GrpcServer

    return GrpcServer.start(
        service, asyncio.get_running_loop(), metrics, port=settings.grpc_port, max_message_bytes=settings.max_body_bytes
    )


def _freeze_startup_objects() -> None:
    """Exempt what exists after start-up (torch, the app, the model) from the cyclic garbage collector.

    Otherwise a full collection, which busy requests trigger every few seconds, rescans ~200,000 start-up
    objects and stalls the event loop for 0.1–0.3 s (the p99 of every request in flight). Once per process:
    the gunicorn master freezes before forking (app.gunicorn_conf), and the test suite starts many apps.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()  # what is garbage now is not frozen for good
        gc.freeze()


app = create_app()
