"""benchmarks.style_accuracy: timing at a phone photo's size (each style's uploads re-encoded, not re-rendered), and
checkpoints compared on the very same renders."""

import io
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.style_accuracy import at_side, compared_table, main, median_ms, parse_args


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


def test_the_compared_table_counts_each_checkpoints_errors_a_style_and_in_all() -> None:
    rows = {
        "mnist": {"n": 20, "errors": 1, "compared_errors": [3, 18]},
        "canvas": {"n": 10, "errors": 2, "compared_errors": [0, 9]},
    }
    table = compared_table([Path("a.safetensors"), Path("b.safetensors"), Path("c.safetensors")], rows).splitlines()
    assert table[1:4] == ["  [0] a.safetensors", "  [1] b.safetensors", "  [2] c.safetensors"]
    assert table[4].split() == ["style", "n", "[0]", "[1]", "[2]"]
    assert [line.split() for line in table[5:]] == [
        ["mnist", "20", "1", "3", "18"],
        ["canvas", "10", "2", "0", "9"],
        ["all", "30", "3", "3", "27"],
    ]


def test_compared_checkpoints_read_the_same_renders(mnist_root, shipped_checkpoint, untrained_checkpoint, capsys):
    common = ["--data-dir", str(mnist_root), "--split", "threshold", "--per-style", "12", "--styles", "mnist", "canvas"]
    common += ["--timing", "0", "--side-timing", "0", "--checkpoint", str(shipped_checkpoint)]
    main([*common, "--compare", str(shipped_checkpoint), str(untrained_checkpoint)])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["style", "n"] and "[0]" in line)
    counts = {line.split()[0]: [int(value) for value in line.split()[1:]] for line in lines[header + 1 : header + 4]}
    # the first table's errors column (style, n, accuracy, errors, ...), printed before the comparison
    rows = [line.split() for line in lines[:header]]
    first = {row[0]: int(row[3]) for row in rows if row[:1] in (["mnist"], ["canvas"])}
    for style in ("mnist", "canvas"):
        n, own, again, untrained = counts[style]
        assert n == 12 and own == again == first[style]  # the same network on the same 28×28 results: the same errors
        assert untrained > own  # random weights misread most digits; the shipped network few
    assert counts["all"][0] == 24


def test_held_out_digits_are_compared_only_between_checkpoints_that_held_out_the_same(
    mnist_root, shipped_checkpoint, untrained_checkpoint
) -> None:
    argv = ["--data-dir", str(mnist_root), "--split", "threshold", "--held-out", "--styles", "mnist"]
    with pytest.raises(SystemExit, match="did not hold out the same images"):
        main([*argv, "--checkpoint", str(shipped_checkpoint), "--compare", str(untrained_checkpoint)])
