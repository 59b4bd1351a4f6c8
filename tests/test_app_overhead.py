"""benchmarks/app_overhead.py: the fixed-answer model answers as the shipped one, every request it times is a real
200 with that answer, and the report's figures are each app's own."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from app.predictor import Predictor
from benchmarks import app_overhead
from benchmarks.app_overhead import FixedAnswers, digit_upload, post, report
from benchmarks.asgi_floor_app import app as floor_app
from benchmarks.bare_app import ANSWER
from benchmarks.serving import mnist_test_digits


def test_the_fixed_answer_is_the_shipped_models_for_the_first_test_digit_whatever_the_images():
    settings = Settings(num_threads=1, max_batch_size=8)
    fixed, real = FixedAnswers(settings), Predictor(settings)
    expected = real.predict(mnist_test_digits(1).copy())[0].numpy()
    answers = fixed.predict(np.zeros((3, 28, 28), np.uint8))
    assert answers.shape[0] == 3
    for row in answers:
        assert np.allclose(row.numpy(), expected, atol=1e-6)
    assert len(fixed.predict(np.zeros((8, 28, 28), np.uint8))) == 8


async def test_the_timed_request_is_answered_by_mnist_serve_and_by_the_floor_and_a_refusal_stops_the_run():
    upload = digit_upload()
    served = create_app(Settings(num_threads=1, decode_threads=1), model_factory=FixedAnswers)
    async with served.router.lifespan_context(served):
        while not served.state.service.batcher.ready:
            await asyncio.sleep(0.01)
        body = orjson.loads(await post(served, upload))
        elsewhere = app_overhead.Upload({**upload.scope, "path": "/nowhere"}, upload.body)
        with pytest.raises(RuntimeError, match="404"):
            await post(served, elsewhere)
    assert body["digit"] == 7 and body["model"]["version"]  # the first MNIST test digit is a 7
    assert orjson.loads(await post(floor_app, upload)) == ANSWER  # the bare server's constant


def test_the_report_gives_each_apps_figures_and_their_difference_per_round():
    lines = report({"mnist-serve": [150.0, 170.0, 160.0], "floor": [40.0, 50.0, 45.0]}, clients=64)
    assert "64 clients" in lines[0] and "3 rounds" in lines[0]
    assert lines[1].split() == ["mnist-serve", "160.0", "(150.0–170.0)"]
    assert lines[2].split() == ["floor", "45.0", "(40.0–50.0)"]
    assert lines[3].endswith("115.0 (110.0–120.0) µs")  # 110, 120 and 115: per round, not medians subtracted


def test_a_short_run_prints_both_apps(capsys):
    app_overhead.main(["--rounds", "2", "--window", "0.05", "--concurrency", "4"])
    out = capsys.readouterr().out
    assert "mnist-serve" in out and "floor" in out and "own work a request" in out
