"""GET /model: which checkpoint is served, on what device, and with which batching settings and limits."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from app.gate import describe_gate
from app.schemas import ModelDescription
from app.service import ServiceDep

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelDescription, summary="The served model and how it runs")
async def describe_model(service: ServiceDep) -> ModelDescription:
    """The checkpoint's metadata as recorded at training, plus the runtime and batching settings in force; the
    digit gate summarised (or a note that the checkpoint has none: `is_digit` is then null)."""
    settings = service.settings
    metadata = dataclasses.asdict(service.model.metadata)
    gate = getattr(service.model, "digit_gate", None)
    metadata["digit_gate"] = describe_gate(gate, switched_off=not settings.digit_gate)
    return ModelDescription(
        name=service.model.name,
        version=service.model.version,
        ready=service.batcher.ready,
        metadata=metadata,
        runtime=service.model.describe(),
        batching={
            "max_batch_size": settings.max_batch_size,
            "max_batch_wait_ms": settings.max_batch_wait_ms,
            "max_queue_size": settings.max_queue_size,
            "request_timeout_s": settings.request_timeout_s,
            "decode_threads": settings.decode_threads,
        },
        limits={
            "max_body_bytes": settings.max_body_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "max_batch_images": settings.max_batch_images,
        },
    )
