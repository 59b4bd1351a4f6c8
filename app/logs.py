"""How the service's log lines look: text for people (the default), or one JSON object a line for log collectors
(MNIST_SERVE_LOG_FORMAT=json: Kubernetes' Fluent Bit, Loki, Cloud Logging parse it without a pattern to maintain).

JSON lines hold `time` (ISO 8601, UTC), `level`, `logger`, `message`, and `exc_info` with the traceback where there
is one; python-json-logger writes them. Under gunicorn (`make serve`, the image) its own lines and uvicorn's are JSON
too (app.gunicorn_conf's logger class); a lone `uvicorn app.main:app` keeps uvicorn's own text lines.
"""

from __future__ import annotations

import logging
from typing import Literal

LogFormat = Literal["text", "json"]
"""MNIST_SERVE_LOG_FORMAT's values."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("levelname", "name", "message")
"""A JSON line's fields besides its time, renamed as JSON_NAMES says."""
JSON_NAMES = {"levelname": "level", "name": "logger"}
JSON_TIME = "time"


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of `log_format`'s lines (the app's, and gunicorn's in app.gunicorn_conf)."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter  # imported only where JSON is asked for

        return JsonFormatter(list(JSON_FIELDS), rename_fields=dict(JSON_NAMES), timestamp=JSON_TIME)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The app's logger at `level`; its lines to stderr in `log_format`, unless the root logger already has a handler
    (pytest's capture, an application embedding this one: whoever set it up decides)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(log_format))
        root.addHandler(handler)
    logging.getLogger("app").setLevel(level)
