"""Baseline: the naive server. A plain FastAPI app with the seed `Net` forward pass inline in the route, one
image per pass, float32, as the pytorch/examples tutorial code would be served; it loads the shipped checkpoint
(or MNIST_SERVE_MODEL_PATH). No batching, no queue, no limits: the simplest thing that answers correctly.

    uvicorn benchmarks.naive_app:app --port 8002     # what benchmarks.serve_throughput runs
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from fastapi import FastAPI, Request
from PIL import Image

from app.config import DEFAULT_MODEL_PATH
from mnist_model import load_checkpoint, normalize

app = FastAPI(title="naive inline baseline")
model, metadata = load_checkpoint(os.environ.get("MNIST_SERVE_MODEL_PATH", DEFAULT_MODEL_PATH))


@app.post("/predict")
async def predict(request: Request) -> dict[str, object]:
    """Decode to 28×28 grayscale, normalise, one forward pass on the event loop, answer the argmax."""
    with Image.open(io.BytesIO(await request.body())) as image:
        pixels = np.array(image.convert("L").resize((28, 28)))
    with torch.inference_mode():
        batch = normalize(torch.from_numpy(pixels), metadata.mean, metadata.std)[None, None]
        probabilities = model(batch).exp()[0].tolist()
    digit = max(range(10), key=probabilities.__getitem__)
    return {"digit": digit, "confidence": probabilities[digit], "probabilities": probabilities}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
