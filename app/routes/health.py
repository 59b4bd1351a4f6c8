"""GET /healthz (the process answers) and GET /readyz (the model is loaded and warmed up: send traffic)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.schemas import ErrorBody, Status

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Status, summary="Liveness")
async def healthz() -> Status:
    """200 whenever the event loop answers; it does not look at the model (that is readiness)."""
    return Status(status="ok")


@router.get(
    "/readyz",
    response_model=Status,
    responses={503: {"model": ErrorBody, "description": "loading, warming up, warm-up failed, or shutting down"}},
    summary="Readiness",
)
async def readyz(request: Request) -> Status | JSONResponse:
    """200 once the model is loaded and a warm-up pass ran; 503 before, during shutdown, or on failure."""
    service = getattr(request.app.state, "service", None)
    if service is not None and service.batcher.ready:
        return Status(status="ready")
    if service is not None and service.batcher.failure is not None:
        detail = f"model warm-up failed: {service.batcher.failure}"
    else:
        detail = "the model is loading or warming up" if service is not None else "the service is not running"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})
