"""mnist_model.checkpoint: safetensors round trip, metadata, atomic writes, and clear errors."""

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from mnist_model import CheckpointError, ModelMetadata, Net, load_checkpoint, save_checkpoint
from mnist_model.checkpoint import atomic_write, read_metadata, write_metadata
from tests.helpers import TutorialNet

METADATA = ModelMetadata(
    epochs=3,
    test_accuracy=0.991,
    per_class_accuracy=[0.99] * 10,
    dataset_sha256={"train": "ab", "test": "cd"},
    created_at="2026-01-01T00:00:00+00:00",
    command="python -m training.run --epochs 3",
    seed=7,
    hyperparameters={"lr": 0.003},
)


def test_round_trip_keeps_weights_and_metadata(tmp_path: Path):
    torch.manual_seed(0)
    model = Net().eval()
    save_checkpoint(tmp_path / "m.safetensors", model, METADATA)
    loaded, metadata = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert metadata == METADATA
    assert not loaded.training


def test_weights_load_into_the_tutorial_net(tmp_path: Path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = Net().eval()
    save_checkpoint(tmp_path / "m.safetensors", model, METADATA)
    tutorial = TutorialNet().eval()
    tutorial.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), tutorial(x))


def test_file_is_safetensors_with_readable_json_metadata(tmp_path: Path):
    save_checkpoint(tmp_path / "m.safetensors", Net(), METADATA)
    raw = (tmp_path / "m.safetensors").read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_length])
    assert json.loads(header["__metadata__"]["test_accuracy"]) == pytest.approx(0.991)
    assert json.loads(header["__metadata__"]["architecture"]) == "pytorch-examples-mnist-cnn"
    assert read_metadata(tmp_path / "m.safetensors").seed == 7


def test_the_same_weights_and_metadata_make_the_same_bytes(tmp_path: Path):
    """The SHA-256 of the file is the served `model.version`: rewriting unchanged content must not change it
    (safetensors alone orders its header differently on each write)."""
    torch.manual_seed(0)
    model = Net()
    for name in ("a", "b", "c"):
        save_checkpoint(tmp_path / f"{name}.safetensors", model, METADATA)
    first = (tmp_path / "a.safetensors").read_bytes()
    assert (tmp_path / "b.safetensors").read_bytes() == first == (tmp_path / "c.safetensors").read_bytes()
    write_metadata(tmp_path / "a.safetensors", read_metadata(tmp_path / "a.safetensors"))  # e.g. a gate refit
    assert (tmp_path / "a.safetensors").read_bytes() == first


def test_the_header_is_sorted_and_the_tensors_stay_aligned(tmp_path: Path):
    save_checkpoint(tmp_path / "m.safetensors", Net(), METADATA)
    blob = (tmp_path / "m.safetensors").read_bytes()
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    assert (8 + size) % 8 == 0  # the tensors' bytes start 8-byte aligned, as the format wants
    assert list(header) == sorted(header) and list(header["__metadata__"]) == sorted(header["__metadata__"])
    assert read_metadata(tmp_path / "m.safetensors") == METADATA


def test_missing_file_says_how_to_get_one(tmp_path: Path):
    with pytest.raises(CheckpointError, match="python -m training.run"):
        load_checkpoint(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle"])
def test_corrupt_files_raise_checkpoint_error(tmp_path: Path, damage: str):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, Net(), METADATA)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        torch.save(Net().state_dict(), path)  # a pickle must be refused, never unpickled
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_foreign_safetensors_without_our_metadata_is_refused(tmp_path: Path):
    from safetensors.torch import save_file

    save_file({name: t.contiguous() for name, t in Net().state_dict().items()}, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not written by mnist-serve"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_other_architecture_is_refused(tmp_path: Path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, Net(), ModelMetadata(architecture="resnet18"))
    with pytest.raises(CheckpointError, match="resnet18"):
        load_checkpoint(path)


def test_wrong_tensor_shapes_are_refused(tmp_path: Path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, nn.Linear(3, 4), METADATA)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_atomic_write_replaces_the_file(tmp_path: Path):
    path = tmp_path / "sub" / "file.bin"
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_bytes() == b"new"


def test_written_files_get_normal_permissions_not_mkstemps_0600(tmp_path: Path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "file.bin", lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "file.bin").stat().st_mode & 0o777 == 0o644


def test_temperature_and_validation_record_round_trip(tmp_path: Path):
    metadata = ModelMetadata(
        temperature=1.37,
        validation={"count": 5000, "seed": 0, "indices_sha256": "ab"},
        calibration={"bins": 15, "test": {"ece_before": 0.01, "ece_after": 0.004}},
    )
    save_checkpoint(tmp_path / "m.safetensors", Net(), metadata)
    assert read_metadata(tmp_path / "m.safetensors") == metadata


def test_a_checkpoint_from_before_calibration_loads_uncalibrated(tmp_path: Path):
    from safetensors.torch import save_file

    old_keys = {"architecture", "format_version", "mean", "std", "epochs", "test_accuracy", "command", "seed"}
    raw = {key: value for key, value in METADATA.to_safetensors().items() if key in old_keys}
    save_file({name: t.contiguous() for name, t in Net().state_dict().items()}, tmp_path / "m.safetensors", raw)
    _, metadata = load_checkpoint(tmp_path / "m.safetensors")
    assert metadata.temperature == 1.0 and metadata.validation == {} and metadata.seed == 7


@pytest.mark.parametrize("temperature", ["0", "-1.5", '"warm"', "null"])
def test_a_temperature_that_is_not_a_positive_number_is_refused(tmp_path: Path, temperature: str):
    from safetensors.torch import save_file

    raw = {**METADATA.to_safetensors(), "temperature": temperature}
    save_file({name: t.contiguous() for name, t in Net().state_dict().items()}, tmp_path / "m.safetensors", raw)
    with pytest.raises(CheckpointError, match="temperature"):
        load_checkpoint(tmp_path / "m.safetensors")
