"""`python -m training.int8`: the ranges it records are the largest ReLU outputs on the images it names, and the
rest of the checkpoint is left as it was."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mnist_model import load_checkpoint, normalize
from mnist_model.checkpoint import read_metadata, write_metadata
from training import int8
from training.data import load_split


def test_records_the_largest_relu_outputs_and_keeps_the_rest(untrained_checkpoint, mnist_root, tmp_path):
    before = untrained_checkpoint.read_bytes()
    write_metadata(untrained_checkpoint, dataclasses.replace(read_metadata(untrained_checkpoint), temperature=1.7))
    original = untrained_checkpoint.read_bytes()
    output = tmp_path / "with-ranges.safetensors"
    int8.main(
        [
            "--checkpoint",
            str(untrained_checkpoint),
            "--data-dir",
            str(mnist_root),
            "--images",
            "300",
            "--output",
            str(output),
        ]
    )
    assert untrained_checkpoint.read_bytes() == original != before  # --output: the checkpoint itself untouched
    net, metadata = load_checkpoint(output)
    images = normalize(load_split(mnist_root, train=True).images[:300], metadata.mean, metadata.std)
    with torch.no_grad():
        first = F.relu(F.conv2d(images.unsqueeze(1), net.conv1.weight, net.conv1.bias))
        second = F.relu(F.conv2d(first, net.conv2.weight, net.conv2.bias))
    assert metadata.int8["conv1_max"] == pytest.approx(float(first.max()), rel=1e-6)
    assert metadata.int8["conv2_max"] == pytest.approx(float(second.max()), rel=1e-6)
    assert metadata.int8["images"] == 300 and metadata.int8["source"] == "MNIST training images 0-299"
    assert dataclasses.replace(metadata, int8={}) == read_metadata(untrained_checkpoint)  # nothing else changed
    original_net, _ = load_checkpoint(untrained_checkpoint)
    weights, original_weights = net.state_dict(), original_net.state_dict()
    assert all(torch.equal(weights[name], original_weights[name]) for name in original_weights)


def test_rewrites_the_checkpoint_in_place_by_default(untrained_checkpoint, mnist_root):
    int8.main(["--checkpoint", str(untrained_checkpoint), "--data-dir", str(mnist_root), "--images", "50"])
    assert read_metadata(untrained_checkpoint).int8["images"] == 50


def test_refuses_no_images_and_a_missing_dataset(untrained_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        int8.main(["--checkpoint", str(untrained_checkpoint), "--images", "0"])
    assert refused.value.code == 2 and "--images must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="MNIST"):
        int8.main(["--checkpoint", str(untrained_checkpoint), "--data-dir", str(tmp_path / "nowhere")])
    assert read_metadata(untrained_checkpoint).int8 == {}
