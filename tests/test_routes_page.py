"""GET / and /static/*: the page's files, their types and security headers; /docs keeps working beside them.

The page's behaviour in a browser is tested in tests/browser (real Chromium); these run without a browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.testing import serve_in_process

STATIC = Path(__file__).resolve().parents[1] / "app/static"


@pytest.fixture
async def client(untrained_checkpoint: Path):
    settings = Settings(model_path=untrained_checkpoint, device="cpu", decode_threads=1)
    async with serve_in_process(create_app(settings)) as http:
        yield http


async def test_the_page_is_served_at_the_root_with_a_strict_policy(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (STATIC / "index.html").read_text()
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    head = await client.head("/")  # uptime checks and `curl -I`
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]


async def test_everything_the_page_loads_is_served_from_here(client):
    html = (await client.get("/")).text
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"static/app.js", "static/style.css", "static/favicon.svg", "docs"} <= set(references)
    assert not [ref for ref in references if "//" in ref], "the page must work offline: no CDN, no other origin"
    types = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
    for name, media_type in types.items():
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].split(";")[0] == media_type
        assert response.content == (STATIC / name).read_bytes()
        assert "default-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/..%2Fmain.py", "/static/%2e%2e%2fconfig.py"])
async def test_only_the_pages_own_files_are_served(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert "detail" in response.json()


async def test_docs_still_work_and_the_page_stays_out_of_the_api_schema(client):
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert "content-security-policy" not in docs.headers  # Swagger UI comes from a CDN: the policy would block it
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and not [path for path in paths if path.startswith("/static")]
