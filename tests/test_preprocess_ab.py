"""benchmarks.preprocess_ab: a git revision's preprocessing imported beside the working tree's, and both compared."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import app.preprocess as current
from benchmarks.preprocess_ab import REPO, compare, export_base, main


@pytest.fixture
def git_checkout() -> None:
    """The base is exported from git: a copy of the source without its history (an sdist, a tarball) has none."""
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False)
    if found.returncode != 0:
        pytest.skip("not a git checkout: no revision to compare against")


@pytest.mark.usefixtures("git_checkout")
def test_the_base_is_the_revisions_own_package_not_the_working_trees(tmp_path: Path) -> None:
    base = export_base("HEAD", tmp_path)
    assert base.to_mnist_pixels is not current.to_mnist_pixels
    assert base.__name__ != current.__name__
    # its modules import each other, not the working tree's: the copy's steps are the copy's own
    assert base.divide_background.__module__.startswith(f"{base.__name__}.")
    assert base.ImageError is not current.ImageError
    assert Path(base.__file__).is_relative_to(tmp_path)


def test_outputs_are_compared_upload_by_upload_and_refusals_by_their_message() -> None:
    def zeros(data: bytes) -> np.ndarray:
        return np.zeros(3, np.uint8)

    def ones_for_b(data: bytes) -> np.ndarray:
        return np.ones(3, np.uint8) if data == b"b" else np.zeros(3, np.uint8)

    def refuse(data: bytes) -> np.ndarray:
        raise ValueError(f"no digit in {data!r}")

    uploads = [b"a", b"b", b"c"]
    assert compare(zeros, zeros, uploads, passes=2)["differing"] == 0
    assert compare(zeros, ones_for_b, uploads, passes=2)["differing"] == 1
    assert compare(refuse, refuse, uploads, passes=2)["differing"] == 0
    assert compare(refuse, zeros, uploads, passes=2)["differing"] == 3
    row = compare(zeros, zeros, uploads, passes=3)
    assert row["n"] == 3 and row["base"] > 0 and row["new"] > 0


@pytest.mark.usefixtures("git_checkout")
def test_the_table_has_a_row_per_style_and_one_for_the_photos(
    mnist_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "--base",
            "HEAD",
            "--styles",
            "pen",
            "canvas",
            "--per-style",
            "2",
            "--photos",
            "1",
            "--passes",
            "2",
            "--data-dir",
            str(mnist_root),
        ]
    )
    rows = re.findall(
        r"^(pen|canvas|photo JPEGs 1024×768) +(\d+) +([\d.]+) +([\d.]+) +([\d.]+)× +(\d+) of (\d+)$",
        capsys.readouterr().out,
        re.MULTILINE,
    )
    assert [(row[0], row[1], row[6]) for row in rows] == [
        ("pen", "2", "2"),
        ("canvas", "2", "2"),
        ("photo JPEGs 1024×768", "1", "1"),
    ]


@pytest.mark.usefixtures("git_checkout")
def test_a_revision_git_does_not_know_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot export app/preprocess at 'no-such-revision'"):
        export_base("no-such-revision", tmp_path)
