"""Log lines (app.logs, MNIST_SERVE_LOG_FORMAT): text by default; with json, one JSON object a line, from the app,
uvicorn and gunicorn alike, as `make serve` and the image run it."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime

import httpx
import pytest

from app.config import SettingsError, load_settings
from app.logs import formatter
from app.testing import running_server
from tests.helpers import REPO, digit_png


def emit(log_format: str, message: str, *args: object, exc_info: bool = False) -> str:
    """What one record of logger `app.test` looks like in `log_format`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))  # type: ignore[arg-type]
    record = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, args, None)
    if exc_info:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError as error:
            record.exc_info = (type(error), error, error.__traceback__)
    handler.emit(record)
    return stream.getvalue()


def test_json_lines_say_when_how_bad_where_and_what():
    [line] = emit("json", "queue %s of %d", "full", 1024).splitlines()
    fields = json.loads(line)
    assert fields.keys() == {"time", "level", "logger", "message"}
    assert (fields["level"], fields["logger"], fields["message"]) == ("WARNING", "app.test", "queue full of 1024")
    assert datetime.fromisoformat(fields["time"]).utcoffset().total_seconds() == 0  # ISO 8601, UTC


def test_a_traceback_stays_inside_its_json_line():
    [line] = emit("json", "the model failed", exc_info=True).splitlines()
    assert "ZeroDivisionError: division by zero" in json.loads(line)["exc_info"]


def test_text_stays_the_default():
    assert load_settings().log_format == "text"
    line = emit("text", "queue %s", "full")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING app\.test: queue full\n", line)


def test_another_format_stops_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="MNIST_SERVE_LOG_FORMAT"):
        load_settings()


@pytest.mark.slow
def test_under_gunicorn_every_line_is_json():
    access_log = {"GUNICORN_CMD_ARGS": "--access-logfile -", "WEB_CONCURRENCY": "1"}
    with running_server(server="gunicorn", settings={"log_format": "json"}, env=access_log, cwd=REPO) as server:
        refused = httpx.post(f"{server.url}/predict", content=b"junk", headers={"Content-Type": "image/png"})
        answered = httpx.post(f"{server.url}/predict", content=digit_png(), headers={"Content-Type": "image/png"})
        output = server.output()
    assert (refused.status_code, answered.status_code) == (415, 200)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # fails on any line that is not JSON
    by_logger = {(line["logger"], line["message"].split(" ")[0]) for line in lines}
    assert ("gunicorn.error", "Booting") in by_logger  # gunicorn's own
    assert ("uvicorn.error", "Application") in by_logger  # uvicorn's, through gunicorn's handlers
    assert ("app", "serving") in by_logger  # the app's
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any('"POST /predict HTTP/1.1" 415' in message for message in access), access
