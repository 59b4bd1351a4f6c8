"""training.data: the IDX reader path on synthetic files, checksums, and the offline error message."""

import gzip
import struct
from pathlib import Path

import pytest
import torch

from training.data import (
    DataError,
    Split,
    holdout_indices,
    indices_sha256,
    load_split,
    missing_data_message,
    recorded_holdout,
    split_validation,
)


def write_idx(raw: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write uncompressed IDX files, the layout torchvision reads once the .gz files are extracted."""
    n, rows, cols = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, rows, cols) + images.numpy().tobytes()
    )
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.numpy().tobytes())


@pytest.fixture
def synthetic_root(tmp_path: Path) -> tuple[Path, torch.Tensor, torch.Tensor]:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (7,), dtype=torch.uint8, generator=generator)
    write_idx(raw, "train", images, labels)
    write_idx(raw, "t10k", images[:3], labels[:3])
    return tmp_path, images, labels


def test_load_split_reads_idx_files_as_uint8_tensors(synthetic_root):
    root, images, labels = synthetic_root
    train = load_split(root, train=True)
    test = load_split(root, train=False)
    assert train.images.dtype == torch.uint8 and train.images.shape == (7, 28, 28)
    assert train.labels.dtype == torch.int64
    assert torch.equal(train.images, images) and torch.equal(train.labels, labels.long())
    assert len(test) == 3 and torch.equal(test.images, images[:3])


def test_sha256_changes_with_one_pixel(synthetic_root):
    root, _, _ = synthetic_root
    split = load_split(root, train=True)
    changed = split.images.clone()
    changed[0, 0, 0] ^= 1
    assert split.sha256() == load_split(root, train=True).sha256()
    assert split.sha256() != Split(changed, split.labels).sha256()


def test_missing_data_raises_with_the_file_paths_to_copy(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        load_split(tmp_path / "empty", train=True)
    message = str(info.value)
    assert "no network" in message
    assert str(tmp_path / "empty" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in message
    assert "t10k-labels-idx1-ubyte.gz" in message and "--data-dir" in message


def test_corrupt_gz_is_a_data_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DataError):
        load_split(tmp_path, train=True, download=False)


def test_missing_data_message_names_the_env_variable():
    assert "MNIST_DATA_DIR" in missing_data_message(Path("x"))


@pytest.mark.slow
def test_real_mnist_has_canonical_sizes(mnist_root):
    train, test = load_split(mnist_root, train=True), load_split(mnist_root, train=False)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_holdout_indices_are_a_seeded_sorted_draw_without_replacement():
    held = holdout_indices(1000, 100, seed=0)
    assert held.shape == (100,) and held.dtype == torch.int64
    assert torch.equal(held, held.sort().values) and len(held.unique()) == 100
    assert 0 <= held.min() and held.max() < 1000
    assert torch.equal(held, holdout_indices(1000, 100, seed=0))
    assert not torch.equal(held, holdout_indices(1000, 100, seed=1))
    assert indices_sha256(held) == indices_sha256(holdout_indices(1000, 100, seed=0))
    assert indices_sha256(held) != indices_sha256(holdout_indices(1000, 100, seed=1))
    assert len(holdout_indices(1000, 0, seed=0)) == 0


@pytest.mark.parametrize("count", [-1, 1000, 5000])
def test_holdout_of_too_many_images_is_refused(count):
    with pytest.raises(ValueError, match="--val-samples"):
        holdout_indices(1000, count, seed=0)


def test_recorded_holdout_rebuilds_the_draw_a_checkpoint_records_and_checks_it():
    record = {"total": 1000, "count": 100, "seed": 4, "indices_sha256": indices_sha256(holdout_indices(1000, 100, 4))}
    assert torch.equal(recorded_holdout(record), holdout_indices(1000, 100, seed=4))
    with pytest.raises(DataError, match="do not match"):
        recorded_holdout(record | {"seed": 5})  # another draw than the one the checksum names
    with pytest.raises(DataError, match="records no held-out"):
        recorded_holdout({})  # a checkpoint trained with --val-samples 0


def test_split_validation_is_disjoint_complete_and_keeps_the_training_order():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1).expand(50, 28, 28).contiguous()
    labels = torch.arange(50) % 10
    held = holdout_indices(50, 12, seed=3)
    train, validation = split_validation(Split(images, labels), held)
    train_ids, val_ids = train.images[:, 0, 0].long(), validation.images[:, 0, 0].long()
    assert torch.equal(val_ids, held)
    assert len(train) == 38 and torch.equal(train_ids, train_ids.sort().values)
    assert set(train_ids.tolist()).isdisjoint(val_ids.tolist())
    assert sorted(train_ids.tolist() + val_ids.tolist()) == list(range(50))
    assert torch.equal(validation.labels, held % 10)
