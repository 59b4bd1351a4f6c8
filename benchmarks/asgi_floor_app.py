"""Baseline: the per-request floor under uvicorn. A raw ASGI app, no framework at all (no routing, middleware,
validation or JSON encoding per request), that reads the body, decodes it as mnist-serve does a 28×28 PNG (its
`mnist_png`, ~30 µs here against Pillow's ~70; Pillow for anything else) and answers the bare server's constant. What
is left is uvicorn's own HTTP handling and the cheapest decode: the least mnist-serve, run by uvicorn, pays a request.

    uvicorn benchmarks.asgi_floor_app:app --port 8001     # what benchmarks.serve_throughput runs

`benchmarks.serve_throughput` adds the model's own time per image to this server's time per request: mnist-serve
cannot answer faster on that core, so that sum bounds what it can reach against the bare server there.
"""

from __future__ import annotations

import io
import json

from PIL import Image
from starlette.types import Receive, Scope, Send

from app.preprocess.digit import mnist_png
from benchmarks.bare_app import ANSWER

ANSWER_BODY = json.dumps(ANSWER).encode()
NOT_AN_IMAGE = b'{"detail": "not an image"}'
READY = b'{"status": "ready"}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """GET /readyz answers ready (the benchmark waits for it); any other request: decode its body as an image and
    answer ANSWER (400 when it is none)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/readyz":
        await respond(send, 200, READY)
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    data = b"".join(chunks)
    try:
        if mnist_png(data) is None:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except (OSError, ValueError, SyntaxError):
        await respond(send, 400, NOT_AN_IMAGE)
        return
    await respond(send, 200, ANSWER_BODY)


async def respond(send: Send, status: int, body: bytes) -> None:
    """A complete JSON response in the two ASGI messages uvicorn needs."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
