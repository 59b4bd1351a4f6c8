"""GET /healthz (the process answers) and GET /readyz (the model is loaded and warmed up: send traffic)."""

from __future__ import annotations

from fastapi import APIRouter

from app.schemas import ErrorBody, Status
from app.service import ServiceDep

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
async def readyz(service: ServiceDep) -> Status:
    """200 once the model is loaded and a warm-up pass ran; 503 (with Retry-After) before, during shutdown, or
    on failure."""
    service.check_ready()
    return Status(status="ready")
