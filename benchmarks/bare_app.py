"""Baseline: the HTTP + decode ceiling. A plain FastAPI app whose /predict reads the body, decodes the image
with Pillow and answers a constant: what any Python server pays per request before the model is involved.

    uvicorn benchmarks.bare_app:app --port 8001     # what benchmarks.serve_throughput runs
"""

from __future__ import annotations

import io

from fastapi import FastAPI, Request
from PIL import Image

app = FastAPI(title="bare decode-only baseline")
ANSWER = {"digit": 7, "confidence": 1.0, "probabilities": [0.0] * 7 + [1.0] + [0.0] * 2}


@app.post("/predict")
async def predict(request: Request) -> dict[str, object]:
    """Decode the uploaded image (so that a broken file would fail) and answer the same prediction every time."""
    with Image.open(io.BytesIO(await request.body())) as image:
        image.load()
    return ANSWER


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
