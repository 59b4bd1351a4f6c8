"""training.rendered: exported renders as extra digits and outlier-exposure non-digits; refused when malformed."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import DataError
from training.rendered import NOT_A_DIGIT, load_rendered


def write_npz(path: Path, pixels: np.ndarray, labels: np.ndarray) -> Path:
    np.savez(path, pixels=pixels, label=labels, group=np.array(["x"] * len(labels)))
    return path


def test_digits_keep_their_labels_and_non_digits_become_outliers(tmp_path):
    pixels = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28).astype(np.uint8)
    labels = np.array([3, NOT_A_DIGIT, 9, NOT_A_DIGIT, 0])
    path = write_npz(tmp_path / "r.npz", pixels, labels)
    rendered = load_rendered(path)
    assert rendered.digits.labels.tolist() == [3, 9, 0] and rendered.digits.labels.dtype == torch.int64
    assert torch.equal(rendered.digits.images, torch.from_numpy(pixels[[0, 2, 4]]))
    assert torch.equal(rendered.outliers, torch.from_numpy(pixels[[1, 3]]))
    assert rendered.describe() == {
        "files": [{"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}],
        "digits": 3,
        "outliers": 2,
        "held_out_sources_dropped": 0,
    }


def test_several_files_are_read_as_one_set_in_order(tmp_path):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(first, pixels=np.full((2, 28, 28), 1, np.uint8), label=np.array([4, 5]), mnist_index=np.array([7, 8]))
    labels = np.array([NOT_A_DIGIT, 6])
    np.savez(second, pixels=np.full((2, 28, 28), 2, np.uint8), label=labels, mnist_index=np.array([-1, 9]))
    rendered = load_rendered(first, second)
    assert rendered.digits.labels.tolist() == [4, 5, 6] and rendered.sources.tolist() == [7, 8, 9]
    assert rendered.digits.images[:, 0, 0].tolist() == [1, 1, 2] and rendered.outliers[:, 0, 0].tolist() == [2]
    assert [file["path"] for file in rendered.describe()["files"]] == [str(first), str(second)]
    assert load_rendered(first, second).without(torch.tensor([8])).digits.labels.tolist() == [4, 6]
    # One file without sources: which renders come from held-out images can no longer be told.
    assert (
        load_rendered(first, write_npz(tmp_path / "c.npz", np.zeros((1, 28, 28), np.uint8), labels[1:])).sources is None
    )


def test_renders_of_held_out_images_are_left_out(tmp_path):
    pixels = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28).astype(np.uint8)
    labels = np.array([3, NOT_A_DIGIT, 9, 2, 0])
    path = tmp_path / "r.npz"
    np.savez(path, pixels=pixels, label=labels, mnist_index=np.array([10, -1, 11, 12, 10]))
    kept = load_rendered(path).without(torch.tensor([10, 500]))
    assert kept.digits.labels.tolist() == [9, 2] and kept.dropped == 2  # both renders of image 10 go
    assert torch.equal(kept.digits.images, torch.from_numpy(pixels[[2, 3]]))
    assert torch.equal(kept.outliers, torch.from_numpy(pixels[[1]]))  # non-digits have no source to match
    assert kept.describe()["held_out_sources_dropped"] == 2
    assert load_rendered(path).without(torch.tensor([], dtype=torch.int64)).dropped == 0


def test_a_file_without_sources_is_refused_when_images_are_held_out(tmp_path):
    path = write_npz(tmp_path / "r.npz", np.zeros((2, 28, 28), np.uint8), np.array([1, 2]))
    with pytest.raises(DataError, match="mnist_index"):
        load_rendered(path).without(torch.tensor([3]))
    assert len(load_rendered(path).without(torch.tensor([], dtype=torch.int64)).digits) == 2  # --val-samples 0


@pytest.mark.parametrize(
    ("pixels", "labels", "message"),
    [
        (np.zeros((2, 28, 28), np.float32), np.array([1, 2]), "uint8"),
        (np.zeros((2, 32, 32), np.uint8), np.array([1, 2]), "N×28×28"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1]), "one integer per image"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10]), "0–9"),
        (np.zeros((2, 28, 28), np.uint8), np.array([-2, 1]), "0–9"),
    ],
)
def test_malformed_files_are_refused_with_the_reason(tmp_path, pixels, labels, message):
    with pytest.raises(DataError, match=message):
        load_rendered(write_npz(tmp_path / "bad.npz", pixels, labels))


def test_missing_arrays_and_pickles_are_refused(tmp_path):
    np.savez(tmp_path / "nolabels.npz", pixels=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="label"):
        load_rendered(tmp_path / "nolabels.npz")
    # An object array can only be stored pickled; reading it would unpickle, so it is refused.
    np.savez(tmp_path / "pickled.npz", pixels=np.array([object()], dtype=object), label=np.array([1]))
    with pytest.raises(DataError, match="pickle"):
        load_rendered(tmp_path / "pickled.npz")
    (tmp_path / "raw.npz").write_bytes(pickle.dumps({"pixels": 1}))
    with pytest.raises(DataError):
        load_rendered(tmp_path / "raw.npz")
    with pytest.raises(DataError, match="cannot read"):
        load_rendered(tmp_path / "absent.npz")


def test_a_malformed_source_column_is_refused(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, pixels=np.zeros((2, 28, 28), np.uint8), label=np.array([1, 2]), mnist_index=np.array([0.5, 1.5]))
    with pytest.raises(DataError, match="mnist_index"):
        load_rendered(path)
