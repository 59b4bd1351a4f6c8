"""benchmarks.style_accuracy's timing at a phone photo's size: each style's uploads re-encoded, not re-rendered."""

import io

import pytest
from PIL import Image

from benchmarks.style_accuracy import at_side, median_ms, parse_args


@pytest.mark.parametrize(
    ("mode", "size", "fmt", "resized"),
    [
        ("RGB", (640, 480), "JPEG", (1024, 768)),  # upscaled
        ("RGBA", (300, 400), "PNG", (768, 1024)),  # a canvas export keeps its transparency
        ("L", (1600, 1200), "PNG", (1024, 768)),  # a scan, downscaled
    ],
)
def test_renders_are_re_encoded_at_the_timing_side_in_their_own_format_and_mode(
    mode: str, size: tuple[int, int], fmt: str, resized: tuple[int, int]
) -> None:
    image = Image.new(mode, size, "white")
    out = io.BytesIO()
    image.save(out, fmt)
    again = Image.open(io.BytesIO(at_side(out.getvalue(), 1024)))
    assert (again.format, again.mode, again.size) == (fmt, mode, resized)


def test_median_ms_times_uploads_the_service_refuses_too() -> None:
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, "PNG")  # "no digit found": the rejection's cost counts
    assert median_ms([blank.getvalue()] * 3) > 0.0
    assert median_ms([blank.getvalue()]) > 0.0  # one file: timed once, after the untimed warm-up
    assert median_ms([]) == 0.0


def test_held_out_is_refused_for_the_test_split_whose_digits_are_all_new() -> None:
    assert parse_args(["--split", "threshold", "--held-out"]).held_out
    with pytest.raises(SystemExit) as refused:
        parse_args(["--held-out"])  # the default split is test
    assert refused.value.code == 2
