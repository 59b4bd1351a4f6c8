"""GET /: the page people use (draw or upload a digit, see the answer and what the model saw), and its files.

The page is plain files in app/static (no build step, nothing from a CDN), served with a Content-Security-Policy
that lets it load only its own files and call only this server. The policy is set here, on the page's own
responses, so that /docs (whose Swagger UI FastAPI loads from a CDN) keeps working.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    # Own files only; images also from data: (the model's input in answers) and blob: (the upload preview).
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidated (ETag) on each load, so a new release shows up at once
}

router = APIRouter(tags=["page"])


def _static_files() -> dict[str, Path]:
    """The servable files by name: only app/static's own files with a known type (no paths, no traversal)."""
    return {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in MEDIA_TYPES and path.is_file()}


STATIC_FILES = _static_files()


def _file(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> FileResponse:
    """The page: a drawing pad and an upload, live predictions, and the 28×28 the model saw."""
    return _file("index.html")


@router.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The page's script, style sheet and icon."""
    return _file(name)
