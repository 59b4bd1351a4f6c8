"""benchmarks.preprocess_steps: every step of the pipeline timed, found from the pipeline's own code, and put back."""

from __future__ import annotations

import re
import types
from collections import defaultdict
from pathlib import Path

import pytest

import app.preprocess as pipeline
import app.preprocess.background as background
import app.preprocess.decode as decode
from benchmarks.preprocess_steps import Timings, main, module_calls, parse_args, pipeline_steps, timed

ROW = re.compile(r"^  (\S+) +([\d.]+) +([\d.]+)% +([\d.]+)$", re.MULTILINE)


def test_the_steps_are_the_pipelines_calls_in_its_order() -> None:
    steps = pipeline_steps(pipeline.to_mnist_pixels)
    for name in ("decode_image", "shrink", "divide_background", "threshold_noise", "keep_digit", "centre_by_mass"):
        assert name in steps
    assert steps.index("decode_image") < steps.index("divide_background") < steps.index("threshold_noise")
    # names the code reads that are not functions of the package are not steps: a class, an attribute of notes
    assert "CueNotes" not in steps and "cues" not in steps
    assert len(steps) == len(set(steps))


def test_a_modules_calls_include_what_it_imports_from_the_package() -> None:
    calls = module_calls(background)
    assert "fill_basins" in calls and "paper_plane" in calls  # its own
    assert "min_filter" in calls and "percentile" in calls  # imported from morphology and quantiles
    assert "resize" not in calls  # OpenCV's, not the package's


def test_timed_counts_each_call_and_puts_the_functions_back_even_after_an_error() -> None:
    module = types.ModuleType("fake")

    def double(value: int) -> int:
        return 2 * value

    def fail() -> None:
        raise ValueError("step failed")

    module.double, module.fail = double, fail  # type: ignore[attr-defined]
    timings: Timings = defaultdict(list)
    with pytest.raises(ValueError, match="step failed"), timed(module, ["double", "fail"], timings, prefix="m."):
        assert module.double(3) == 6  # type: ignore[attr-defined]
        assert module.double(4) == 8  # type: ignore[attr-defined]
        assert module.double is not double  # type: ignore[attr-defined]
        module.fail()  # type: ignore[attr-defined]
    assert module.double is double and module.fail is fail  # type: ignore[attr-defined]
    assert len(timings["m.double"]) == 2 and len(timings["m.fail"]) == 1  # a failing call is timed too
    assert all(seconds >= 0 for seconds in timings["m.double"])


def test_inside_takes_the_packages_modules_only_and_each_once() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--inside", "no_such_module"])
    assert parse_args(["--inside", "background", "rulings", "background"]).inside == ["background", "rulings"]


def test_the_table_has_every_step_and_the_inside_calls_and_leaves_the_pipeline_as_it_was(
    mnist_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(mnist_root), "--passes", "2"]
    main(["--styles", "canvas", "--per-style", "2", "--photos", "0", "--inside", "background", *data])
    canvas = capsys.readouterr().out
    main(["--styles", "--photos", "1", *data])
    photo = capsys.readouterr().out
    assert "canvas: 2 uploads (0 refused), 1 timed passes" in canvas
    assert "photo JPEGs 1024×768: 1 uploads (0 refused), 1 timed passes" in photo
    rows = {name: (float(ms), float(calls)) for name, ms, _, calls in ROW.findall(photo)}
    assert set(pipeline_steps(pipeline.to_mnist_pixels)) <= set(rows)  # every step has its row
    assert rows["decode_image"][1] == 1.0 and rows["crop_to_ink"][1] == 2.0  # calls an upload
    mean = float(re.search(r"mean ([\d.]+) ms an upload", photo).group(1))  # type: ignore[union-attr]
    steps = sum(ms for ms, _ in rows.values())
    assert 0.5 * mean < steps <= mean * 1.01  # one after another, they are most of the pipeline and no more
    inside = [name for name, *_ in ROW.findall(canvas) if name.startswith("background.")]
    assert inside and "(inside background, within the steps above)" in canvas  # even paper: percentiles, corners
    # nothing is left wrapped
    assert pipeline.decode_image is decode.decode_image
    assert background.fill_basins.__qualname__ == "fill_basins"
